// The script a site pastes: <script src="<openlines>/widget/<code>.js" async></script>.
// It asks openlines whether to show the chat here (the answer is readable only on the
// channel's allowed origins), then adds a round button that opens the chat in an iframe.
// A site that knows its visitor sets, before this script,
//   window.openlines = {identifier: "...", identifier_hash: "<HMAC-SHA256 hex>"}
// and the chat continues the same conversation on any device. A page that signs a visitor
// in or out without reloading calls window.openlinesIdentify({identifier, identifier_hash})
// (or window.openlinesIdentify(null)): the chat switches to that visitor.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var src = new URL(script.src);
  var match = src.pathname.match(/^(.*)\/widget\/([^/]+)\.js$/);
  if (!match) return;
  var base = src.origin + match[1];
  var code = match[2];
  var widget = base + "/widget/" + code;
  var CHAT_ICON = '<svg width="28" height="28" viewBox="0 0 24 24" aria-hidden="true">' +
    '<path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 ' +
    '1-2-2V6a2 2 0 0 1 2-2z"/></svg>';

  fetch(widget + "/config", { credentials: "omit" })
    .then(function (answer) { return answer.ok ? answer.json() : null; })
    .then(function (config) { if (config && config.show) mount(config); })
    .catch(function () { /* not on an allowed origin, or openlines is away: no chat */ });

  function mount(config) {
    var side = config.position === "left" ? "left" : "right";
    var button = document.createElement("button");
    button.type = "button";
    button.setAttribute("aria-label", config.title);
    button.setAttribute("data-openlines", "open");
    button.innerHTML = CHAT_ICON;
    style(button, {
      position: "fixed", bottom: "20px", width: "56px", height: "56px", border: "0",
      borderRadius: "50%", background: config.colour, color: "#fff", fontSize: "26px",
      cursor: "pointer", boxShadow: "0 4px 14px rgba(0,0,0,.25)", zIndex: "2147483000",
    });
    button.style[side] = "20px";

    var frame = document.createElement("iframe");
    frame.src = widget + "/frame";
    frame.title = config.title;
    frame.setAttribute("data-openlines", "chat");
    frame.allow = "clipboard-write";
    style(frame, {
      position: "fixed", bottom: "88px", width: "370px", height: "560px",
      maxHeight: "calc(100vh - 108px)", border: "0", borderRadius: "12px",
      boxShadow: "0 8px 30px rgba(0,0,0,.3)", zIndex: "2147483000", display: "none",
      background: "#fff",
    });
    frame.style[side] = "20px";

    var phone = window.matchMedia("(max-width: 600px)");
    function fit() {
      var open = frame.style.display !== "none";
      if (phone.matches) {  // the whole screen, as a messenger would
        style(frame, { width: "100vw", height: "100dvh", maxHeight: "none", bottom: "0",
          borderRadius: "0" });
        frame.style[side] = "0";
        button.style.display = open ? "none" : "block";
      } else {
        style(frame, { width: "370px", height: "560px", maxHeight: "calc(100vh - 108px)",
          bottom: "88px", borderRadius: "12px" });
        frame.style[side] = "20px";
        button.style.display = "block";
      }
    }
    phone.addEventListener("change", fit);

    function toggle(open) {
      frame.style.display = open ? "block" : "none";
      button.style.outline = "none";
      fit();
      if (open) frame.contentWindow.postMessage({ openlines: "opened" }, src.origin);
    }
    button.addEventListener("click", function () { toggle(frame.style.display === "none"); });

    window.addEventListener("message", function (event) {
      if (event.source !== frame.contentWindow || event.origin !== src.origin) return;
      var data = event.data || {};
      if (data.openlines === "ready") {
        var who = window.openlines || {};
        frame.contentWindow.postMessage({
          openlines: "identity",
          identifier: who.identifier || null,
          identifier_hash: who.identifier_hash || null,
        }, src.origin);
      } else if (data.openlines === "close") {
        toggle(false);
      } else if (data.openlines === "unread" && frame.style.display === "none") {
        button.style.outline = "3px solid #d1242f";  // a reply came while the chat was shut
      }
    });

    window.openlinesIdentify = function (who) {
      window.openlines = who || {};
      frame.contentWindow.postMessage({
        openlines: "identify",
        identifier: (who && who.identifier) || null,
        identifier_hash: (who && who.identifier_hash) || null,
      }, src.origin);
    };

    document.body.appendChild(frame);
    document.body.appendChild(button);
    fit();
  }

  function style(element, values) {
    for (var name in values) element.style[name] = values[name];
  }
})();
