// The operator console. State lives here; the API is the truth: lists and the open dialog
// are read again whenever the event stream says something changed.
(function () {
  "use strict";

  var state = {
    key: sessionStorage.getItem("openlines:key"), me: null, operatorId: null, current: null,
    currentDialog: null, stream: null, refreshTimer: null, typingSentAt: 0, quick: [],
    chosen: 0, lineList: {},
  };
  var $ = function (id) { return document.getElementById(id); };

  // --- the API -------------------------------------------------------------------------

  function api(method, path, body) {
    var headers = { Authorization: "Bearer " + state.key };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (answer) {
      if (answer.status === 204) return null;
      return answer.json().then(function (data) {
        if (!answer.ok) throw new Error(data.detail || answer.status);
        return data;
      });
    });
  }

  function acting(body) {  // an admin acts for the operator picked at sign-in
    body = body || {};
    if (state.me.role === "admin") body.operator_id = state.operatorId;
    return body;
  }

  // --- sign in -------------------------------------------------------------------------

  $("signin").addEventListener("submit", function (event) {
    event.preventDefault();
    if (state.me && state.me.role === "admin" && !$("as-label").hidden) {
      state.operatorId = Number($("as").value);
      return begin();
    }
    state.key = $("key").value.trim();
    signIn();
  });

  function signIn() {
    api("GET", "/v1/me").then(function (me) {
      state.me = me;
      sessionStorage.setItem("openlines:key", state.key);
      if (me.operator_id) {
        state.operatorId = me.operator_id;
        return begin();
      }
      if (me.role !== "admin") throw new Error("this key belongs to no operator");
      return api("GET", "/v1/operators").then(function (operators) {  // an admin picks one
        $("as").innerHTML = "";
        operators.forEach(function (operator) {
          var option = document.createElement("option");
          option.value = operator.id;
          option.textContent = operator.name;
          $("as").appendChild(option);
        });
        $("as-label").hidden = false;
      });
    }).catch(function (error) { $("signin-error").textContent = String(error.message); });
  }

  function begin() {
    $("signin").hidden = true;
    $("app").hidden = false;
    return api("GET", "/v1/operators/" + state.operatorId).then(function (operator) {
      $("me").textContent = operator.name + " (" + state.me.role + ")";
      $("online").checked = operator.presence === "online";
      $("workday").checked = operator.workday === "started";
      $("queue-section").hidden = state.me.role === "operator";
      refresh();
      follow();
    });
  }

  $("online").addEventListener("change", function () {
    api("PUT", "/v1/operators/" + state.operatorId + "/presence",
      { status: $("online").checked ? "online" : "offline" });
  });
  $("workday").addEventListener("change", function () {
    api("PUT", "/v1/operators/" + state.operatorId + "/workday",
      { state: $("workday").checked ? "started" : "ended" });
  });

  // --- lists ---------------------------------------------------------------------------

  function refresh() {
    api("GET", "/v1/operators/" + state.operatorId + "/dialogs").then(function (dialogs) {
      var offered = dialogs.filter(function (d) { return d.operator_id === null; });
      var mine = dialogs.filter(function (d) { return d.operator_id === state.operatorId; });
      list("offered", offered);
      list("mine", mine);
    });
    if (state.me.role !== "operator") {
      api("GET", "/v1/dialogs?status=queued&limit=100").then(function (page) {
        list("queue", page.items);
      });
    }
    if (state.current) openDialog(state.current);
  }

  function list(name, dialogs) {
    var element = $(name);
    element.innerHTML = "";
    $(name + "-count").textContent = dialogs.length;
    dialogs.forEach(function (dialog) {
      var item = document.createElement("li");
      item.textContent = "#" + dialog.number + " · " + dialog.channel_type + " · " + dialog.status;
      item.dataset.id = dialog.id;
      if (dialog.kpi && dialog.kpi.overdue) item.classList.add("overdue");
      if (dialog.id === state.current) item.classList.add("current");
      item.addEventListener("click", function () { openDialog(dialog.id); });
      element.appendChild(item);
    });
  }

  function soon() {  // events come in bursts: read once after them
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, 150);
  }

  // --- the event stream ----------------------------------------------------------------

  function follow() {
    var controller = new AbortController();
    state.stream = controller;
    fetch("/v1/events?operator_id=" + state.operatorId, {
      headers: { Authorization: "Bearer " + state.key }, signal: controller.signal,
    }).then(function (answer) {
      $("stream-status").textContent = "";
      var reader = answer.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function more() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true });
          var blocks = buffer.split("\n\n");
          buffer = blocks.pop();
          blocks.forEach(handle);
          return more();
        });
      }
      return more();
    }).catch(function () {
      $("stream-status").textContent = "reconnecting…";
    }).then(function () {
      if (state.stream === controller) setTimeout(follow, 1000);
    });
  }

  function handle(block) {
    var kind = null, data = null;
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) kind = line.slice(7);
      if (line.indexOf("data: ") === 0) data = JSON.parse(line.slice(6));
    });
    if (!kind || !data) return;
    if (kind === "typing") {
      if (data.dialog_id === state.current) {
        $("client-typing").textContent = data.text ? "Client is typing: " + data.text : "";
        clearTimeout(state.typingClear);
        state.typingClear = setTimeout(function () { $("client-typing").textContent = ""; }, 6000);
      }
      return;
    }
    soon();
  }

  // --- a dialog ------------------------------------------------------------------------

  function openDialog(id) {
    var switching = state.current !== id;
    state.current = id;
    if (switching) $("client-typing").textContent = "";
    Promise.all([
      api("GET", "/v1/dialogs/" + id),
      api("GET", "/v1/dialogs/" + id + "/messages?limit=500"),
    ]).then(function (found) {
      var dialog = found[0], messages = found[1].items;
      state.currentDialog = dialog;
      $("empty").hidden = true;
      $("dialog").hidden = false;
      $("dialog-title").textContent = "Dialog #" + dialog.number + " · " + dialog.status;
      showActions(dialog);
      var history = $("history");
      history.innerHTML = "";
      messages.forEach(function (message) { history.appendChild(bubble(message, dialog)); });
      history.scrollTop = history.scrollHeight;
      card(dialog);
      document.querySelectorAll("nav li").forEach(function (item) {
        item.classList.toggle("current", Number(item.dataset.id) === id);
      });
    });
  }

  function showActions(dialog) {
    var mine = dialog.operator_id === state.operatorId;
    var offered = dialog.offered_to.indexOf(state.operatorId) >= 0;
    var open = ["closed", "spam"].indexOf(dialog.status) < 0;
    var shown = {
      accept: offered && !mine, skip: offered || mine, transfer: open, pin: mine && !dialog.pinned,
      unpin: mine && dialog.pinned, close: open, spam: open,
    };
    document.querySelectorAll("#actions button").forEach(function (button) {
      button.hidden = !shown[button.dataset.action];
    });
  }

  function bubble(message, dialog) {
    var element = document.createElement("div");
    element.className = "msg " + message.author;
    element.textContent = message.text;
    var editor = state.me.role === "admin" || state.me.role === "supervisor";
    if (editor && message.author === "operator") {  // save as quick answer
      var save = document.createElement("button");
      save.className = "save";
      save.textContent = "save as quick answer";
      save.addEventListener("click", function () { saveQuick(dialog, message.text); });
      element.appendChild(save);
    }
    return element;
  }

  function card(dialog) {
    var aside = $("card");
    if (!dialog.contact_id) { aside.innerHTML = "<p>No CRM card yet.</p>"; return; }
    api("GET", "/v1/crm/contacts/" + dialog.contact_id).then(function (contact) {
      aside.innerHTML = "";
      var title = document.createElement("h3");
      title.textContent = contact.name || "Client";
      aside.appendChild(title);
      [["Phones", contact.phones], ["Emails", contact.emails]].forEach(function (row) {
        var line = document.createElement("p");
        line.textContent = row[0] + ": " + (row[1].join(", ") || "—");
        aside.appendChild(line);
      });
    }).catch(function () { aside.innerHTML = "<p>No CRM card.</p>"; });
  }

  $("actions").addEventListener("click", function (event) {
    var action = event.target.dataset && event.target.dataset.action;
    if (!action || !state.current) return;
    var body;
    if (action === "transfer") {
      var to = prompt("Transfer to an operator id, or line:<id>");
      if (!to) return;
      body = to.indexOf("line:") === 0 ? { line_id: Number(to.slice(5)) }
        : { operator_id: Number(to) };
    } else if ((action === "close" || action === "spam") && state.me.role !== "operator") {
      body = {};  // supervisors and admins close any dialog as themselves
    } else {
      body = acting();
    }
    api("POST", "/v1/dialogs/" + state.current + "/" + action, body)
      .then(soon).catch(function (error) { alert(error.message); });
  });

  // --- replying, quick answers and typing ---------------------------------------------

  $("reply").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("reply-text").value.trim();
    if (!text || !state.current) return;
    if (!$("quick").hidden && state.quick.length) return insertQuick(state.quick[state.chosen]);
    api("POST", "/v1/dialogs/" + state.current + "/messages", acting({ text: text }))
      .then(function () { $("reply-text").value = ""; soon(); })
      .catch(function (error) { alert(error.message); });
  });

  $("reply-text").addEventListener("keydown", function (event) {
    var quickOpen = !$("quick").hidden && state.quick.length;
    if (quickOpen && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      state.chosen = (state.chosen + step + state.quick.length) % state.quick.length;
      drawQuick();
    } else if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("reply").requestSubmit();
    } else if (event.key === "Escape") {
      $("quick").hidden = true;
    }
  });

  $("reply-text").addEventListener("input", function () {
    var text = $("reply-text").value;
    if (text.charAt(0) === "/") return searchQuick(text.slice(1));
    $("quick").hidden = true;
    var now = Date.now();
    if (state.current && now - state.typingSentAt > 2000) {
      state.typingSentAt = now;
      api("POST", "/v1/dialogs/" + state.current + "/typing", { text: text ? "…" : "" })
        .catch(function () { /* a hint only */ });
    }
  });

  function searchQuick(query) {
    var path = "/v1/dialogs/" + state.current + "/quick-answers?q=" + encodeURIComponent(query);
    var asked = state.quickAsked = (state.quickAsked || 0) + 1;
    api("GET", path).then(function (page) {
      // Only the answer to the latest search, and only while the box still searches.
      if (asked !== state.quickAsked || $("reply-text").value.charAt(0) !== "/") return;
      state.quick = page.items;
      state.chosen = 0;
      drawQuick();
    });
  }

  function drawQuick() {
    var list = $("quick-list");
    list.innerHTML = "";
    $("quick").hidden = state.quick.length === 0;
    state.quick.forEach(function (answer, index) {
      var item = document.createElement("li");
      var code = document.createElement("b");
      code.textContent = "/" + answer.code;
      item.appendChild(code);
      item.appendChild(document.createTextNode(answer.title));
      if (index === state.chosen) item.classList.add("chosen");
      item.addEventListener("mousedown", function (event) {
        event.preventDefault();
        insertQuick(answer);
      });
      list.appendChild(item);
    });
  }

  function insertQuick(answer) {
    $("reply-text").value = answer.filled;
    $("quick").hidden = true;
    $("reply-text").focus();
  }

  function saveQuick(dialog, text) {
    api("GET", "/v1/lines/" + dialog.line_id).then(function (line) {
      var listId = line.quick_answers_list_id;
      if (!listId) throw new Error("this line has no quick answer list");
      var code = prompt("Short code for this answer");
      if (!code) return;
      return api("POST", "/v1/quick-answer-lists/" + listId + "/answers",
        { title: text.slice(0, 60), code: code, text: text });
    }).catch(function (error) { alert(error.message); });
  }

  if (state.key) signIn();
})();
