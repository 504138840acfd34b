/* vocalsep listening test: the admin page (progress).  The admin token comes
   from the address (#token=..., never sent to the server as part of a URL) or
   from the form, and is sent as "Authorization: Bearer TOKEN". */
"use strict";

(function () {
  const root = document.getElementById("admin");
  const base = root.dataset.base || "/";
  const $ = (id) => document.getElementById(id);
  const KEY = "vocalsep-listen-admin";
  let token = null;
  let timer = null;

  function say(text, isError) {
    $("status").textContent = text || "";
    $("status").classList.toggle("error", !!isError);
  }

  async function get(path) {
    const response = await fetch(base + path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    if (!response.ok) {
      let message = "the server answered " + response.status;
      try {
        message = (await response.json()).error || message;
      } catch (e) { /* not JSON */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    return td;
  }

  function time(iso) {
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function render(p) {
    const s = p.participants;
    const summary = $("summary");
    summary.replaceChildren();
    const facts = [
      ["Participants started", s.started],
      ["Finished", s.finished],
      ["In progress", s.in_progress],
      ["Disqualified (failed a control)", s.disqualified],
      ["Finished and qualified", s.finished_qualified],
      ["Questions per participant", p.items + " (" + p.controls + " controls)"],
      ["Answers stored", p.answers],
    ];
    for (const [k, v] of facts) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = String(v);
      summary.append(dt, dd);
    }
    const body = $("participants").querySelector("tbody");
    body.replaceChildren();
    for (const r of p.rows) {
      const tr = document.createElement("tr");
      const status = r.disqualified ? "disqualified" : r.finished ? "finished" : "in progress";
      tr.className = r.disqualified ? "dq" : "";
      tr.append(cell(r.id), cell(r.external_id), cell(time(r.started)), cell(time(r.last_answer)),
        cell(r.answered + " / " + r.total), cell(status), cell(r.completion_code), cell(r.reason));
      body.appendChild(tr);
    }
    const items = $("items").querySelector("tbody");
    items.replaceChildren();
    for (const i of p.per_item) {
      const tr = document.createElement("tr");
      tr.append(cell(i.item), cell(i.control ? "yes" : ""), cell(i.answers));
      items.appendChild(tr);
    }
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }

  async function refresh() {
    try {
      const data = await (await get("api/admin/progress")).json();
      $("login").hidden = true;
      $("board").hidden = false;
      render(data);
      say("");
    } catch (e) {
      if (e.status === 401) {
        token = null;
        try {
          sessionStorage.removeItem(KEY);
        } catch (err) { /* nothing stored */ }
        if (timer) clearInterval(timer);
        timer = null;
        $("board").hidden = true;
        $("login").hidden = false;
        say("The admin token is wrong.", true);
      } else {
        say("Could not load the progress (" + e.message + ").", true);
      }
    }
  }

  async function download() {
    try {
      const blob = await (await get("api/admin/responses.csv")).blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "responses.csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
    } catch (e) {
      say("Could not download the responses (" + e.message + ").", true);
    }
  }

  function begin(t) {
    token = t;
    try {
      sessionStorage.setItem(KEY, t);
    } catch (e) { /* not stored */ }
    history.replaceState(null, "", location.pathname);
    refresh();
    if (!timer) timer = setInterval(refresh, 10000);
  }

  $("login").addEventListener("submit", function (event) {
    event.preventDefault();
    begin($("token").value.trim());
  });
  $("refresh").addEventListener("click", refresh);
  $("download").addEventListener("click", download);

  const m = location.hash.match(/token=([A-Za-z0-9_-]{16,64})/);
  let stored = null;
  try {
    stored = sessionStorage.getItem(KEY);
  } catch (e) { /* none */ }
  if (m) begin(m[1]);
  else if (stored) begin(stored);
  else $("login").hidden = false;
})();
