// The chat inside the widget's iframe. It opens a session (the visitor token is kept in
// localStorage, so a reload keeps the conversation), follows the chat's live stream, and
// sends what the visitor writes.
//
// Nothing is missed or shown twice: the stream is asked for what came after the last
// message shown, and reopened when it ends, when the network comes back ("online"), and
// when the tab wakes ("visibilitychange"); messages are shown by id, once. What the visitor
// writes is shown at once and matched to the stored copy by its client message id; one that
// could not be sent is sent again, with the same id, when the network is back.
(function () {
  "use strict";

  var TEXTS = {
    en: {
      placeholder: "Type a message", send: "Send", typing: " is typing…", closed:
      "The dialog is closed. Write to start a new one.", offline: "No connection. Reconnecting…",
      failed: "Not sent yet: it will be sent when the connection is back.", name: "Your name",
      email: "Email", phone: "Phone", agree: "I agree", like: "👍", dislike: "👎",
    },
    ru: {
      placeholder: "Введите сообщение", send: "Отправить", typing: " печатает…", closed:
      "Диалог закрыт. Напишите, чтобы начать новый.", offline: "Нет связи. Подключаемся…",
      failed: "Ещё не отправлено: уйдёт, когда появится связь.", name: "Ваше имя",
      email: "Email", phone: "Телефон", agree: "Согласен", like: "👍", dislike: "👎",
    },
  };
  var match = location.pathname.match(/^(.*)\/widget\/([^/]+)\/frame$/);
  var code = match[2];
  var api = location.origin + match[1] + "/v1/webchat/" + code;
  var root = location.origin + match[1];
  var stored = "openlines:" + code;

  var state = {
    token: null, line: null, texts: TEXTS.en, lastId: 0, shown: {}, pending: {},
    dialog: null, stream: null, retryMs: 1000, typingSentAt: 0, typingTimer: null,
  };
  var $ = function (id) { return document.getElementById(id); };

  // --- start: the identity from the page, then the session -----------------------------

  function start() {
    var answered = false;
    window.addEventListener("message", function (event) {
      if (event.source !== window.parent) return;
      var data = event.data || {};
      if (data.openlines === "identity" && !answered) {
        answered = true;
        open(data.identifier && data.identifier_hash ? data : null);
      } else if (data.openlines === "opened") {
        $("text").focus();
      } else if (data.openlines === "identify" && answered) {
        switchTo(data.identifier && data.identifier_hash ? data : null);
      }
    });
    if (window.parent !== window) window.parent.postMessage({ openlines: "ready" }, "*");
    setTimeout(function () { if (!answered) { answered = true; open(null); } }, 500);
  }

  function open(identity) {
    var body = { visitor_token: localStorage.getItem(stored) };
    if (identity) {
      body.identifier = identity.identifier;
      body.identifier_hash = identity.identifier_hash;
    }
    call("POST", "/session", body).then(function (session) {
      state.token = session.visitor_token;
      localStorage.setItem(stored, state.token);
      state.line = session.line;
      state.texts = TEXTS[session.line.language] || TEXTS.en;
      dress();
      follow();
    }).catch(function () { setTimeout(function () { open(identity); }, state.retryMs); });
  }

  // The page signed another visitor in (or out): their chat, from the start.
  function switchTo(identity) {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.lastId = 0;
    state.shown = {};
    state.pending = {};
    state.dialog = null;
    $("messages").innerHTML = "";
    $("typing").textContent = "";
    status("");
    if (!identity) localStorage.removeItem(stored);  // signed out: a new anonymous visitor
    open(identity);
  }

  function dress() {
    var texts = state.texts;
    document.documentElement.lang = state.line.language;
    document.documentElement.style.setProperty("--colour", state.line.colour);
    $("title").textContent = state.line.title;
    document.title = state.line.title;
    $("text").placeholder = texts.placeholder;
    $("send").textContent = texts.send;
    var form = $("prechat");
    form.elements.name.placeholder = texts.name;
    form.elements.email.placeholder = texts.email;
    form.elements.phone.placeholder = texts.phone;
  }

  // --- the live stream ---------------------------------------------------------------------

  function follow() {
    if (state.stream) state.stream.abort();
    var controller = new AbortController();
    state.stream = controller;
    fetch(api + "/events?after=" + state.lastId, {
      headers: { Authorization: "Bearer " + state.token }, signal: controller.signal,
    }).then(function (answer) {
      if (!answer.ok) throw new Error("stream " + answer.status);
      status("");
      state.retryMs = 1000;
      return read(answer.body.getReader());
    }).then(function () {
      if (state.stream === controller) follow();  // the stream ended: open the next one
    }).catch(function () {
      if (controller.signal.aborted) return;  // replaced by a newer stream
      status(state.texts.offline);
      setTimeout(function () { if (state.stream === controller) follow(); }, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 10000);
    });
  }

  function read(reader) {
    var decoder = new TextDecoder();
    var buffer = "";
    function more() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var parts = buffer.split("\n\n");
        buffer = parts.pop();
        parts.forEach(handle);
        return more();
      });
    }
    return more();
  }

  function handle(block) {
    var event = "message", data = null;
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) event = line.slice(7);
      if (line.indexOf("data: ") === 0) data = JSON.parse(line.slice(6));
    });
    if (data === null) return;
    if (event === "message") show(data);
    if (event === "dialog") dialogChanged(data);
    if (event === "typing") typing(data);
  }

  function reconnectNow() { if (state.token) follow(); }
  window.addEventListener("online", function () { reconnectNow(); resend(); });
  window.addEventListener("offline", function () {  // the stream is gone; say so at once
    if (state.stream) state.stream.abort();
    state.stream = null;
    status(state.texts.offline);
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") reconnectNow();
  });

  // --- showing messages ----------------------------------------------------------------

  function show(message) {
    state.lastId = Math.max(state.lastId, message.id);
    if (state.shown[message.id]) return;
    var element = message.client_message_id && state.pending[message.client_message_id];
    if (element) {  // our own message, stored: the optimistic bubble becomes it
      delete state.pending[message.client_message_id];
      element.classList.remove("pending", "failed");
    } else {
      element = bubble(message.author, message.text, message.sender);
      if (message.author === "operator" || message.author === "bot") {
        window.parent.postMessage({ openlines: "unread" }, "*");
      }
    }
    element.dataset.id = message.id;
    state.shown[message.id] = true;
    if (message.author === "operator" || message.author === "bot") $("typing").textContent = "";
    if (message.kind === "agreement") offer(element, [[state.texts.agree, function () {
      write(state.texts.agree);
    }]]);
    if (message.rating_request) offer(element, [
      [state.texts.like, function () { rate(message.dialog_id, "like"); }],
      [state.texts.dislike, function () { rate(message.dialog_id, "dislike"); }],
    ]);
    $("prechat").hidden = true;
    scroll();
  }

  function bubble(author, text, sender) {
    var element = document.createElement("div");
    element.className = "message " + author;
    if (sender && author !== "system") {
      var who = document.createElement("div");
      who.className = "sender";
      if (sender.avatar_url) {
        var avatar = document.createElement("img");
        avatar.src = sender.avatar_url;
        avatar.alt = "";
        who.appendChild(avatar);
      }
      who.appendChild(document.createTextNode(sender.name));
      element.appendChild(who);
    }
    element.appendChild(document.createTextNode(text));
    $("messages").appendChild(element);
    return element;
  }

  function offer(element, choices) {
    var actions = document.createElement("div");
    actions.className = "actions";
    choices.forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = choice[0];
      button.addEventListener("click", function () { actions.remove(); choice[1](); });
      actions.appendChild(button);
    });
    element.appendChild(actions);
  }

  function dialogChanged(dialog) {
    state.dialog = dialog;
    var closed = dialog.status === "closed" || dialog.status === "spam";
    status(closed ? state.texts.closed : "");
    if (dialog.rating) {
      document.querySelectorAll(".actions").forEach(function (actions) {
        if (actions.textContent.indexOf(state.texts.like) >= 0) actions.remove();
      });
    }
  }

  function typing(signal) {
    clearTimeout(state.typingTimer);
    $("typing").textContent = signal.typing ? (signal.name || "") + state.texts.typing : "";
    state.typingTimer = setTimeout(function () { $("typing").textContent = ""; }, 6000);
  }

  function status(text) { $("status").textContent = text; }
  function scroll() { var list = $("messages"); list.scrollTop = list.scrollHeight; }

  // --- writing -------------------------------------------------------------------------

  function newId() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID()
      : String(Date.now()) + "-" + Math.random().toString(36).slice(2);
  }

  function write(text) {
    var id = newId();
    var element = bubble("client", text, null);
    element.classList.add("pending");
    var body = { client_message_id: id, text: text };
    var form = $("prechat");
    if (!form.hidden) {
      ["name", "email", "phone"].forEach(function (field) {
        var value = form.elements[field].value.trim();
        if (value) body[field] = value;
      });
    }
    state.pending[id] = element;
    element.dataset.body = JSON.stringify(body);
    scroll();
    send(element);
  }

  function send(element) {
    call("POST", "/messages", JSON.parse(element.dataset.body)).catch(function () {
      element.classList.add("failed");
      element.title = state.texts.failed;
      setTimeout(function () { if (navigator.onLine) send(element); }, state.retryMs);
    });
  }

  function resend() {
    for (var id in state.pending) {
      if (state.pending[id].classList.contains("failed")) send(state.pending[id]);
    }
  }

  function rate(dialogId, value) {
    fetch(root + "/v1/dialogs/" + dialogId + "/rating", {
      method: "POST",
      headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
      body: JSON.stringify({ value: value }),
    });
  }

  function typed() {
    var now = Date.now();
    if (!state.dialog || now - state.typingSentAt < 2000) return;
    state.typingSentAt = now;
    fetch(root + "/v1/dialogs/" + state.dialog.id + "/typing", {
      method: "POST",
      headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
      body: JSON.stringify({ text: $("text").value.slice(0, 1000) }),
    }).catch(function () { /* a hint only */ });
  }

  function call(method, path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    return fetch(api + path, { method: method, headers: headers, body: JSON.stringify(body) })
      .then(function (answer) {
        if (!answer.ok) throw new Error(method + " " + path + ": " + answer.status);
        return answer.json();
      });
  }

  $("compose").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("text").value.trim();
    if (!text || !state.token) return;
    $("text").value = "";
    state.typingSentAt = 0;
    write(text);
  });
  $("text").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("compose").requestSubmit();
    }
  });
  $("text").addEventListener("input", typed);
  $("close").addEventListener("click", function () {
    window.parent.postMessage({ openlines: "close" }, "*");
  });

  // The pre-chat form, before a visitor's first message, where the channel asks for it.
  var showForm = setInterval(function () {
    if (!state.line) return;
    clearInterval(showForm);
    if (state.line.prechat_form && state.lastId === 0) $("prechat").hidden = false;
  }, 100);

  start();
})();
