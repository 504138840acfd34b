/* vocalsep web: upload songs, follow their jobs, play the stems in sync and download them.
   No framework, nothing from the network.  Every text that comes from a file name or the server goes
   into the page as text (textContent), never as HTML. */
(function () {
  "use strict";

  const app = document.getElementById("app");
  const base = app.dataset.base || "/";
  const $ = (id) => document.getElementById(id);
  const STEMS = ["vocals", "accompaniment"];
  const POLL_BUSY = 1000;
  const POLL_IDLE = 10000;

  let config = null;
  let jobs = [];                       // the server's jobs, newest first
  const local = [];                    // uploads not (yet) jobs: {key, file, state, message, progress}
  const seen = new Map();              // job id -> last status, to announce changes
  const mine = new Set();              // jobs uploaded from this page: the first to finish opens
  let pollTimer = null;
  let uploading = false;
  let localKey = 0;

  // -- small helpers

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.appendChild(c);
    return node;
  }

  function say(text, error) {
    const s = $("status");
    s.textContent = text;
    s.className = error ? "error" : "";
  }

  function clock(seconds) {
    if (!isFinite(seconds) || seconds < 0) seconds = 0;
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + ss : m + ":" + ss;
  }

  function megabytes(bytes) {
    return (bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0) + " MB";
  }

  class ApiFailure extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options) {
    const resp = await fetch(base + path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {}));
    if (resp.status === 401) {
      showLogin();
      throw new ApiFailure(401, "This server needs its token.");
    }
    const type = resp.headers.get("Content-Type") || "";
    const data = type.startsWith("application/json") ? await resp.json() : null;
    if (!resp.ok) throw new ApiFailure(resp.status, (data && data.error) || "The server answered " + resp.status + ".");
    return data;
  }

  // -- the token

  function showLogin() {
    $("login").hidden = false;
    $("upload").hidden = true;
    $("jobs-section").hidden = true;
    $("player").hidden = true;
    if (pollTimer) clearTimeout(pollTimer);
    $("token").focus();
  }

  async function login(token) {
    const resp = await fetch(base + "api/session", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: token }),
    });
    return resp.ok;
  }

  $("login-form").addEventListener("submit", async function (e) {
    e.preventDefault();
    if (await login($("token").value)) {
      $("token").value = "";
      $("login").hidden = true;
      start();
    } else {
      say("That token is not this server's.", true);
      $("token").select();
    }
  });

  // -- uploads

  function accepts() {
    return config ? config.accept.join(",") + ",audio/*,video/*" : "audio/*,video/*";
  }

  function addFiles(files) {
    for (const file of files) {
      const item = { key: "local-" + (++localKey), file: file, state: "waiting", message: "", progress: 0 };
      if (file.size === 0) {
        item.state = "refused";
        item.message = file.name + " is empty (0 bytes)";
      } else if (config && file.size > config.max_mb * 1e6) {
        item.state = "refused";
        item.message = file.name + " is larger than the limit of " + config.max_mb + " MB";
      }
      local.push(item);
    }
    render();
    pump();
  }

  function pump() {
    if (uploading) return;
    const item = local.find((i) => i.state === "waiting");
    if (!item) return;
    uploading = true;
    item.state = "uploading";
    item.progress = 0;
    render();
    const form = new FormData();
    form.append("file", item.file, item.file.name);
    const model = $("model").value;
    if (model && config && model !== config.default_model) form.append("model", model);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", base + "api/jobs");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        item.progress = e.loaded / e.total;
        renderLocal(item);
      }
    });
    xhr.addEventListener("loadend", function () {
      uploading = false;
      const data = xhr.response;
      if (xhr.status === 202 && data && data.id) {
        local.splice(local.indexOf(item), 1);
        mine.add(data.id);
        upsert(data);
        say(item.file.name + " is queued.");
      } else if (xhr.status === 429) {
        const wait = Number(xhr.getResponseHeader("Retry-After")) || 10;
        item.state = "waiting-room";
        item.message = "The queue is full; trying again in " + wait + " s.";
        setTimeout(function () { if (item.state === "waiting-room") { item.state = "waiting"; pump(); } }, wait * 1000);
      } else if (xhr.status === 401) {
        item.state = "waiting";
        showLogin();
        return;
      } else {
        item.state = "refused";
        item.message = (data && data.error) || (xhr.status === 413
          ? item.file.name + " is larger than the limit of " + (config ? config.max_mb : "?") + " MB"
          : "The upload of " + item.file.name + " failed (" + (xhr.status || "no answer from the server") + ").");
        say(item.message, true);
      }
      render();
      schedule(50);
      pump();
    });
    xhr.send(form);
  }

  const fileInput = $("files");
  fileInput.addEventListener("change", function () {
    addFiles(Array.from(fileInput.files));
    fileInput.value = "";
  });
  const drop = $("drop");
  ["dragenter", "dragover"].forEach(function (type) {
    drop.addEventListener(type, function (e) {
      e.preventDefault();
      drop.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    drop.addEventListener(type, function (e) {
      e.preventDefault();
      drop.classList.remove("dragging");
    });
  });
  drop.addEventListener("drop", function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles(Array.from(e.dataTransfer.files));
  });
  // a file dropped anywhere on the page is taken too (and never replaces the page)
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", function (e) {
    e.preventDefault();
    if (!drop.contains(e.target) && !$("upload").hidden && e.dataTransfer && e.dataTransfer.files.length) {
      addFiles(Array.from(e.dataTransfer.files));
    }
  });

  // -- the list

  function stateText(job) {
    if (job.status === "queued") return job.position ? "Waiting: " + ordinal(job.position) + " in the queue" : "Waiting";
    if (job.status === "running") return "Separating: " + Math.round(job.progress * 100) + " %";
    if (job.status === "done") return "Ready \u00b7 " + clock(job.duration) + (job.model !== (config && config.default_model) ? " \u00b7 " + job.model : "");
    return "Failed: " + (job.error || "no reason given");
  }

  function ordinal(n) {
    return n === 1 ? "next" : n + (n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : n % 10 === 1 && n % 100 !== 11 ? "st" : "th");
  }

  function jobNode(key) {
    let node = document.querySelector('#jobs > li[data-key="' + key + '"]');
    if (node) return node;
    const name = el("span", { class: "job-name" });
    const state = el("span", { class: "job-state" });
    const actions = el("div", { class: "job-actions" });
    node = el("li", { class: "job", "data-key": key }, [
      el("div", { class: "job-line" }, [name, actions, state]),
      el("progress", { max: "1", value: "0" }),
    ]);
    return node;
  }

  function setActions(node, buttons) {
    const box = node.querySelector(".job-actions");
    const want = buttons.map((b) => b.cls).join(" ");
    if (box.dataset.have === want) return;
    box.dataset.have = want;
    box.replaceChildren(...buttons.map(function (b) {
      const button = el("button", { type: "button", class: b.cls, text: b.text, "aria-label": b.label });
      button.addEventListener("click", b.run);
      return button;
    }));
  }

  function deleteButton(job) {
    let armed = null;
    return {
      cls: "delete", text: "Delete", label: "Delete " + job.name,
      run: async function (e) {
        const button = e.currentTarget;
        if (!armed) { // a second press confirms
          button.textContent = "Confirm";
          button.classList.add("confirm");
          armed = setTimeout(function () { armed = null; button.textContent = "Delete"; button.classList.remove("confirm"); }, 4000);
          return;
        }
        clearTimeout(armed);
        try {
          await api("api/jobs/" + job.id, { method: "DELETE" });
          if (player.job && player.job.id === job.id) closePlayer();
          jobs = jobs.filter((j) => j.id !== job.id);
          say(job.name + " is deleted.");
          render();
          $("files").focus();
        } catch (err) {
          say(err.message, true);
        }
      },
    };
  }

  function renderJob(job, node) {
    node.className = "job " + job.status + (player.job && player.job.id === job.id ? " open" : "");
    node.querySelector(".job-name").textContent = job.name;
    node.querySelector(".job-state").textContent = stateText(job);
    const bar = node.querySelector("progress");
    bar.hidden = job.status === "done" || job.status === "failed";
    if (job.status === "queued") bar.removeAttribute("value");
    else bar.value = job.progress;
    bar.setAttribute("aria-label", "Progress of " + job.name);
    const buttons = [];
    if (job.status === "done") buttons.push({ cls: "open", text: "Play", label: "Play " + job.name, run: () => openPlayer(job, true) });
    buttons.push(deleteButton(job));
    setActions(node, buttons);
  }

  function renderLocal(item, node) {
    node = node || document.querySelector('#jobs > li[data-key="' + item.key + '"]');
    if (!node) return;
    const text = {
      waiting: "Waiting to upload",
      uploading: "Uploading: " + Math.round(item.progress * 100) + " % of " + megabytes(item.file.size),
      "waiting-room": item.message,
      refused: item.message,
    }[item.state];
    node.className = "job " + (item.state === "refused" ? "refused" : "queued");
    node.querySelector(".job-name").textContent = item.file.name;
    node.querySelector(".job-state").textContent = text;
    const bar = node.querySelector("progress");
    bar.hidden = item.state === "refused";
    if (item.state === "uploading") bar.value = item.progress;
    else bar.removeAttribute("value");
    bar.setAttribute("aria-label", "Upload of " + item.file.name);
    setActions(node, item.state === "refused" || item.state === "waiting" || item.state === "waiting-room" ? [{
      cls: "dismiss", text: item.state === "refused" ? "Dismiss" : "Cancel", label: "Remove " + item.file.name + " from the list",
      run: function () { local.splice(local.indexOf(item), 1); render(); $("files").focus(); },
    }] : []);
  }

  function render() {
    const list = $("jobs");
    const keys = [];
    const nodes = [];
    for (const item of local) {
      const node = jobNode(item.key);
      renderLocal(item, node);
      keys.push(item.key);
      nodes.push(node);
    }
    for (const job of jobs) {
      const node = jobNode(job.id);
      renderJob(job, node);
      keys.push(job.id);
      nodes.push(node);
    }
    // keep the nodes (and the focus inside them), in order
    for (const child of Array.from(list.children)) if (!keys.includes(child.dataset.key)) child.remove();
    nodes.forEach(function (node, k) { if (list.children[k] !== node) list.insertBefore(node, list.children[k] || null); });
    $("no-jobs").hidden = nodes.length > 0;
  }

  function upsert(job) {
    const k = jobs.findIndex((j) => j.id === job.id);
    if (k >= 0) jobs[k] = job; else jobs.unshift(job);
    render();
  }

  // -- polling

  function schedule(delay) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(refresh, delay);
  }

  async function refresh() {
    let data;
    try {
      data = await api("api/jobs");
    } catch (err) {
      if (err.status !== 401) {
        say("The server does not answer (" + err.message + "); trying again.", true);
        schedule(POLL_IDLE / 2);
      }
      return;
    }
    jobs = data.jobs;
    const q = data.queue;
    $("queue-line").textContent = q.running + " of " + q.workers + " worker" + (q.workers === 1 ? "" : "s") + " busy, " +
      q.waiting + " waiting (room for " + q.max + ").";
    for (const job of jobs) {
      const before = seen.get(job.id);
      if (before && before !== job.status) {
        if (job.status === "done") say(job.name + " is ready.");
        if (job.status === "failed") say(job.error || job.name + " failed.", true);
        if (job.status === "done" && mine.has(job.id) && !player.job) openPlayer(job, false);
      }
      seen.set(job.id, job.status);
    }
    if (player.job && !jobs.some((j) => j.id === player.job.id)) closePlayer();
    render();
    const busy = jobs.some((j) => j.status === "queued" || j.status === "running") || local.some((i) => i.state !== "refused");
    schedule(busy ? POLL_BUSY : POLL_IDLE);
  }

  // -- the player: both stems decoded and started on the same Web Audio clock, so they stay in sync

  const player = {
    job: null, ctx: null, buffers: null, gains: {}, sources: [], playing: false, offset: 0, startedAt: 0,
    duration: 0, peaks: null, level: 1, mute: { vocals: false, accompaniment: false }, solo: { vocals: false, accompaniment: false },
    frame: 0, token: 0,
  };

  function levels() {
    const anySolo = player.solo.vocals || player.solo.accompaniment;
    const out = {};
    for (const stem of STEMS) {
      let g = stem === "vocals" ? player.level : 1;
      if (player.mute[stem] || (anySolo && !player.solo[stem])) g = 0;
      out[stem] = g;
    }
    return out;
  }

  function applyLevels() {
    const g = levels();
    for (const stem of STEMS) {
      const node = player.gains[stem];
      if (node) node.gain.setTargetAtTime(g[stem], player.ctx.currentTime, 0.015);
      const label = document.querySelector('.stem[data-stem="' + stem + '"] .stem-gain');
      label.textContent = Math.round(g[stem] * 100) + " %";
      label.dataset.gain = String(g[stem]);
    }
    const pct = Math.round(player.level * 100);
    $("vocal-level-out").textContent = pct + " %";
    $("vocal-level").setAttribute("aria-valuetext", pct + " % vocals" + (pct === 0 ? ", karaoke" : pct === 100 ? ", original" : ""));
    for (const kind of ["mute", "solo"]) {
      for (const stem of STEMS) {
        document.querySelector('.stem[data-stem="' + stem + '"] .' + kind).setAttribute("aria-pressed", String(player[kind][stem]));
      }
    }
    updateLinks();
    draw();
  }

  function updateLinks() {
    if (!player.job) return;
    const fmt = $("format").value;
    const root = base + "api/jobs/" + player.job.id + "/";
    $("dl-vocals").href = root + "vocals." + fmt;
    $("dl-accompaniment").href = root + "accompaniment." + fmt;
    $("dl-both").href = root + "stems.zip?format=" + fmt;
    const g = levels();
    $("dl-mix").href = root + "mix." + fmt + "?vocals=" + g.vocals.toFixed(2) + "&accompaniment=" + g.accompaniment.toFixed(2);
    $("dl-mix").textContent = "Mix as heard (vocals " + Math.round(g.vocals * 100) + " %" +
      (g.accompaniment === 1 ? "" : ", accompaniment " + Math.round(g.accompaniment * 100) + " %") + ")";
  }

  function position() {
    if (!player.playing) return player.offset;
    return Math.min(player.duration, player.offset + Math.max(0, player.ctx.currentTime - player.startedAt));
  }

  function stopSources() {
    for (const s of player.sources) {
      s.onended = null;
      try { s.stop(); } catch (e) { /* not started */ }
      s.disconnect();
    }
    player.sources = [];
  }

  function startSources() {
    stopSources();
    const at = player.ctx.currentTime + 0.03;
    for (const stem of STEMS) {
      const src = player.ctx.createBufferSource();
      src.buffer = player.buffers[stem];
      src.connect(player.gains[stem]);
      src.start(at, player.offset);
      player.sources.push(src);
    }
    player.sources[0].onended = function () {
      if (player.playing && position() >= player.duration - 0.05) {
        pause();
        player.offset = 0;
        paint();
      }
    };
    player.startedAt = at;
  }

  async function play() {
    if (!player.buffers || player.playing) return;
    await player.ctx.resume();
    if (player.offset >= player.duration - 0.05) player.offset = 0;
    player.playing = true;
    startSources();
    $("play").textContent = "Pause";
    tick();
  }

  function pause() {
    if (!player.playing) return;
    player.offset = position();
    player.playing = false;
    stopSources();
    $("play").textContent = "Play";
    paint();
  }

  function seek(t) {
    player.offset = Math.max(0, Math.min(player.duration, t));
    if (player.playing) startSources();
    paint();
  }

  function tick() {
    cancelAnimationFrame(player.frame);
    paint();
    if (player.playing) player.frame = requestAnimationFrame(tick);
  }

  function paint() {
    const t = position();
    $("time").textContent = clock(t) + " / " + clock(player.duration);
    const wave = $("wave");
    wave.setAttribute("aria-valuemax", String(Math.round(player.duration)));
    wave.setAttribute("aria-valuenow", String(Math.round(t)));
    wave.setAttribute("aria-valuetext", clock(t) + " of " + clock(player.duration));
    draw();
  }

  function draw() {
    const canvas = $("wave-canvas");
    const box = $("wave");
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(box.clientWidth * ratio));
    const h = Math.max(1, Math.round(box.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const c = canvas.getContext("2d");
    c.clearRect(0, 0, w, h);
    const p = player.peaks;
    if (!p) return;
    const style = getComputedStyle(document.documentElement);
    const colours = { vocals: style.getPropertyValue("--vocals").trim(), accompaniment: style.getPropertyValue("--accompaniment").trim() };
    const g = levels();
    const played = player.duration ? position() / player.duration : 0;
    const n = p.buckets;
    const bar = w / n;
    const mid = h / 2;
    for (const stem of ["accompaniment", "vocals"]) {
      const values = p[stem];
      for (let k = 0; k < n; k++) {
        const x = k * bar;
        const done = (k + 0.5) / n <= played;
        c.globalAlpha = (0.25 + 0.75 * g[stem]) * (done ? 1 : 0.55);
        c.fillStyle = colours[stem];
        const y = Math.max(1, values[k] * mid * 0.95);
        c.fillRect(x, mid - y, Math.max(1, bar), 2 * y);
      }
    }
    c.globalAlpha = 1;
    c.fillStyle = "#1b1f24";
    c.fillRect(Math.round(played * w) - ratio, 0, 2 * ratio, h);
  }

  async function openPlayer(job, focus) {
    closePlayer();
    const token = ++player.token;
    player.job = job;
    player.duration = job.duration;
    player.offset = 0;
    $("player").hidden = false;
    $("player-title").textContent = job.name;
    $("play").disabled = true;
    // the browser holds both stems decoded (32-bit floats): say how much it fetches
    const bytes = 2 * job.duration * job.sample_rate * job.channels * 2;
    $("player-status").textContent = "Loading the stems (" + megabytes(bytes) + ")\u2026";
    // MP3 holds 1 or 2 channels at the usual rates only
    const mp3 = $("format").querySelector('option[value="mp3"]');
    mp3.disabled = job.channels > 2 || ![8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000].includes(job.sample_rate);
    if (mp3.disabled && $("format").value === "mp3") $("format").value = "wav";
    updateLinks();
    applyLevels();
    paint();
    render();
    if (focus) $("player-title").focus();
    try {
      const peaks = await api("api/jobs/" + job.id + "/peaks");
      if (token !== player.token) return;
      player.peaks = peaks;
      draw();
      const Ctx = window.AudioContext || window.webkitAudioContext;
      const ctx = new Ctx();
      const buffers = {};
      for (const stem of STEMS) {
        const resp = await fetch(base + "api/jobs/" + job.id + "/" + stem + ".wav", { credentials: "same-origin" });
        if (!resp.ok) throw new Error("the " + stem + " could not be loaded (" + resp.status + ")");
        buffers[stem] = await ctx.decodeAudioData(await resp.arrayBuffer());
        if (token !== player.token) { ctx.close(); return; }
      }
      player.ctx = ctx;
      player.buffers = buffers;
      player.duration = buffers.vocals.duration;
      for (const stem of STEMS) {
        player.gains[stem] = ctx.createGain();
        player.gains[stem].connect(ctx.destination);
      }
      applyLevels();
      for (const stem of STEMS) player.gains[stem].gain.value = levels()[stem];
      $("play").disabled = false;
      $("player-status").textContent = "";
      paint();
    } catch (err) {
      if (token === player.token) $("player-status").textContent = "The player could not load this song: " + err.message;
    }
  }

  function closePlayer() {
    pause();
    player.token++;
    if (player.ctx) player.ctx.close();
    Object.assign(player, { job: null, ctx: null, buffers: null, gains: {}, sources: [], peaks: null, offset: 0 });
    $("player").hidden = true;
    render();
  }

  $("play").addEventListener("click", function () { if (player.playing) pause(); else play(); });
  $("close-player").addEventListener("click", function () { closePlayer(); $("files").focus(); });
  $("vocal-level").addEventListener("input", function (e) {
    player.level = Number(e.target.value) / 100;
    applyLevels();
  });
  $("format").addEventListener("change", updateLinks);
  for (const stem of STEMS) {
    for (const kind of ["mute", "solo"]) {
      document.querySelector('.stem[data-stem="' + stem + '"] .' + kind).addEventListener("click", function () {
        player[kind][stem] = !player[kind][stem];
        applyLevels();
      });
    }
  }

  function setLevel(pct) {
    const slider = $("vocal-level");
    slider.value = String(Math.max(0, Math.min(100, pct)));
    player.level = Number(slider.value) / 100;
    applyLevels();
  }

  // the waveform: a slider of the position (pointer and keyboard)
  const wave = $("wave");
  function seekTo(e) {
    const r = wave.getBoundingClientRect();
    seek(((e.clientX - r.left) / r.width) * player.duration);
  }
  wave.addEventListener("pointerdown", function (e) {
    if (!player.buffers) return;
    wave.setPointerCapture(e.pointerId);
    seekTo(e);
  });
  wave.addEventListener("pointermove", function (e) { if (wave.hasPointerCapture(e.pointerId)) seekTo(e); });
  wave.addEventListener("keydown", function (e) {
    const step = { ArrowLeft: -5, ArrowRight: 5, PageDown: -30, PageUp: 30 }[e.key];
    if (step !== undefined) seek(position() + step);
    else if (e.key === "Home") seek(0);
    else if (e.key === "End") seek(player.duration);
    else return;
    e.preventDefault();
  });
  window.addEventListener("resize", draw);

  // page-wide keys while the player is open (not while typing or on a control that uses them)
  document.addEventListener("keydown", function (e) {
    if (!player.job || e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const tag = t.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    if (e.key === " " && tag !== "BUTTON" && tag !== "A") {
      e.preventDefault();
      if (player.playing) pause(); else play();
    } else if ((e.key === "ArrowUp" || e.key === "ArrowDown") && t !== wave) {
      e.preventDefault();
      setLevel(Math.round(player.level * 100) + (e.key === "ArrowUp" ? 10 : -10));
    } else if (e.key === "k" || e.key === "K") {
      setLevel(0);
    } else if (e.key === "v" || e.key === "V") {
      setLevel(100);
    }
  });

  // a read-only view of the player for tests and for the curious: the levels asked for and the gains applied
  window.vocalsep = {
    state: function () {
      const applied = {};
      for (const stem of STEMS) applied[stem] = player.gains[stem] ? player.gains[stem].gain.value : null;
      return { job: player.job && player.job.id, ready: !!player.buffers, playing: player.playing, position: position(),
        duration: player.duration, levels: levels(), gains: applied };
    },
  };

  // -- start

  async function start() {
    try {
      config = await api("api/config");
    } catch (err) {
      if (err.status !== 401) say("The server does not answer: " + err.message, true);
      return;
    }
    fileInput.setAttribute("accept", accepts());
    $("limits").textContent = "Audio or video, up to " + config.max_mb + " MB each; many at once are queued. " +
      "Finished songs stay here until you delete them (the last " + config.keep + " are kept).";
    const select = $("model");
    select.replaceChildren(...config.models.map((m) => el("option", { value: m, text: m === config.default_model && m !== "default" ? m + " (default)" : m })));
    select.value = config.default_model;
    $("model-line").hidden = config.models.length < 2;
    $("login").hidden = true;
    $("upload").hidden = false;
    $("jobs-section").hidden = false;
    await refresh();
  }

  (async function () {
    const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (m) {
      history.replaceState(null, "", location.pathname + location.search);
      if (!(await login(decodeURIComponent(m[1])))) say("The token in the address is not this server's.", true);
    }
    start();
  })();
})();
