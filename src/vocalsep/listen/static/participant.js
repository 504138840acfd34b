/* vocalsep listening test: the participant page.  Plain JavaScript, no libraries.

   Rule "a clip must be played before it can be rated": the page counts the
   seconds of a clip that have actually been heard, from the audio element's
   timeupdate/ended events, forward playback only (a seek resets the count's
   reference point, so jumping ahead does not count).  A clip is "played" when
   that count reaches the question's listen_seconds (the whole clip unless the
   study says less) less TOLERANCE; its rating buttons are enabled from then on.
   The server checks the reported seconds again. */
"use strict";

(function () {
  const TOLERANCE = 0.25;
  const app = document.getElementById("app");
  const base = app.dataset.base || "/";
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  const STORAGE_KEY = "vocalsep-listen-token";

  let token = null;
  let study = null;
  let page = null; // {position, players: [...], reference: player|null, shownAt, active}

  function say(text, isError) {
    statusEl.textContent = text || "";
    statusEl.classList.toggle("error", !!isError);
  }

  async function api(method, path, body) {
    const options = { method: method, headers: { Accept: "application/json" }, cache: "no-store" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(base + path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || "the server answered " + response.status);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function readToken() {
    const m = location.hash.match(/^#t=([A-Za-z0-9_-]{16,64})$/);
    if (m) return m[1];
    try {
      return localStorage.getItem(STORAGE_KEY);
    } catch (e) {
      return null;
    }
  }

  function keepToken(t) {
    token = t;
    try {
      localStorage.setItem(STORAGE_KEY, t);
    } catch (e) { /* private mode: the address keeps it */ }
    history.replaceState(null, "", location.pathname + location.search + "#t=" + t);
  }

  function forgetToken() {
    token = null;
    try {
      localStorage.removeItem(STORAGE_KEY);
    } catch (e) { /* nothing stored */ }
    history.replaceState(null, "", location.pathname + location.search);
  }

  function show(id) {
    for (const s of ["welcome", "question", "done"]) $(s).hidden = s !== id;
  }

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

  function clock(seconds) {
    if (!isFinite(seconds)) seconds = 0;
    const s = Math.floor(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  // -- players

  function stopAll(except) {
    if (!page) return;
    for (const p of allPlayers()) if (p !== except && !p.audio.paused) p.audio.pause();
  }

  function allPlayers() {
    return page ? page.players.concat(page.reference ? [page.reference] : []) : [];
  }

  function makePlayer(url, name, need, onPlayed) {
    const audio = new Audio();
    audio.preload = "auto";
    audio.src = base + url;
    const player = { audio: audio, listened: 0, played: false, lastT: null, lastWall: 0, restart: false, name: name };
    const button = el("button", { type: "button", class: "play", "aria-label": "Play " + name, text: "Play" });
    const seek = el("input", { type: "range", min: "0", max: "1", step: "0.1", value: "0", "aria-label": "Position in " + name });
    const time = el("span", { class: "time", text: "0:00" });
    const heard = el("span", { class: "heard", text: need !== null ? "Not played yet" : "" });
    player.node = el("div", { class: "player" }, [button, seek, time, heard]);
    player.button = button;

    function required() {
      const d = isFinite(audio.duration) && audio.duration > 0 ? audio.duration : need;
      return Math.min(need, d) - TOLERANCE;
    }

    function account() {
      if (player.lastT === null || audio.seeking) return;
      const t = audio.currentTime;
      const wall = performance.now();
      const step = t - player.lastT;
      const possible = ((wall - player.lastWall) / 1000) * Math.max(audio.playbackRate, 1) * 1.5 + 0.3;
      // a step longer than the wall clock allows counts only as long as it could have played:
      // a jump ahead gains nothing, and a late event on a busy page loses nothing
      if (step > 0) player.listened += Math.min(step, possible);
      player.lastT = t;
      player.lastWall = wall;
      if (need !== null && !player.played && player.listened >= required()) {
        player.played = true;
        heard.textContent = "Played";
        player.node.classList.add("is-played");
        onPlayed(player);
      }
    }

    function paint() {
      const d = isFinite(audio.duration) ? audio.duration : 0;
      seek.max = String(d || 1);
      seek.value = String(audio.currentTime);
      time.textContent = clock(audio.currentTime) + " / " + clock(d);
    }

    button.addEventListener("click", function () {
      if (audio.paused) {
        stopAll(player);
        if (audio.ended) {
          player.restart = true; // our own seek back to the start: the count goes on from 0
          audio.currentTime = 0;
        }
        // the count starts here, not in the "play" event, which a busy page may handle late
        player.lastT = audio.currentTime;
        player.lastWall = performance.now();
        audio.play().catch(function (e) {
          say("The clip could not be played (" + e.message + "). Try again, or reload the page.", true);
        });
      } else {
        audio.pause();
      }
    });
    seek.addEventListener("input", function () {
      player.lastT = null;
      audio.currentTime = Number(seek.value);
    });
    audio.addEventListener("play", function () {
      if (player.lastT === null) { // started by something else than the button (e.g. a headset's play key)
        player.lastT = audio.currentTime;
        player.lastWall = performance.now();
      }
      button.textContent = "Pause";
      button.setAttribute("aria-label", "Pause " + name);
      if (need !== null && !player.played) heard.textContent = "Playing\u2026";
      if (page && onPlayed && need !== null) setActive(player);
    });
    audio.addEventListener("seeking", function () {
      if (player.restart) {
        player.restart = false;
        return;
      }
      player.lastT = null;
    });
    audio.addEventListener("seeked", function () {
      if (!audio.paused) {
        player.lastT = audio.currentTime;
        player.lastWall = performance.now();
      }
      paint();
    });
    audio.addEventListener("timeupdate", function () {
      account();
      paint();
    });
    audio.addEventListener("loadedmetadata", paint);
    for (const ev of ["pause", "ended"]) {
      audio.addEventListener(ev, function () {
        account();
        player.lastT = null;
        button.textContent = ev === "ended" ? "Play again" : "Play";
        button.setAttribute("aria-label", (ev === "ended" ? "Play again " : "Play ") + name);
        if (need !== null && !player.played) heard.textContent = player.listened > 0 ? "Paused before the end" : "Not played yet";
        paint();
      });
    }
    audio.addEventListener("error", function () {
      say("The clip " + name + " could not be loaded. Check your connection and reload the page.", true);
    });
    return player;
  }

  // -- one question

  function setActive(player) {
    if (!page) return;
    page.active = player;
    for (const p of page.players) p.card.classList.toggle("active", p === player);
  }

  function ratingOf(player) {
    const checked = player.card.querySelector("input[type=radio]:checked");
    return checked ? Number(checked.value) : null;
  }

  function update() {
    const ready = page.players.every((p) => p.played && ratingOf(p) !== null);
    $("next").disabled = !ready;
    $("next-hint").textContent = ready ? "" : "Play and rate every clip to continue.";
  }

  function renderItem(state) {
    const item = state.item;
    for (const p of allPlayers()) {
      p.audio.pause();
      p.audio.removeAttribute("src");
      p.audio.load();
    }
    page = { position: item.position, players: [], reference: null, shownAt: performance.now(), active: null };
    $("counter").textContent = "Question " + (item.position + 1) + " of " + state.total;
    $("progress").max = state.total;
    $("progress").value = state.answered;
    $("question-text").textContent = item.text;

    const ref = $("reference");
    ref.replaceChildren();
    if (item.reference) {
      page.reference = makePlayer(item.reference, "the original song", null, null);
      ref.appendChild(el("div", { class: "card reference" }, [el("h3", { text: "Original song (for comparison)" }), page.reference.node]));
    }

    const clips = $("clips");
    clips.replaceChildren();
    for (const clip of item.clips) {
      const name = "clip " + clip.slot;
      const player = makePlayer(clip.audio, name, item.listen_seconds, function (p) {
        p.fieldset.disabled = false;
        p.hint.textContent = "";
        update();
      });
      const legend = el("legend", { text: "Your rating of clip " + clip.slot });
      const options = el("div", { class: "scale" });
      study.scale.forEach(function (label, k) {
        const value = String(k + 1);
        const input = el("input", { type: "radio", name: "rate-" + clip.slot, value: value, id: "rate-" + clip.slot + "-" + value });
        input.addEventListener("change", function () {
          for (const step of options.children) step.classList.toggle("is-checked", step.contains(input));
          player.card.classList.add("is-rated");
          setActive(player);
          update();
        });
        options.appendChild(el("label", { for: input.id, class: "step" },
          [input, el("span", { class: "num", text: value }), el("span", { class: "lab", text: label })]));
      });
      const hint = el("p", { class: "hint", text: "Play the clip to the end to rate it." });
      const fieldset = el("fieldset", { class: "rating" }, [legend, options]);
      fieldset.disabled = true;
      const card = el("section", { class: "card clip", "aria-label": "Clip " + clip.slot },
        [el("h3", { text: "Clip " + clip.slot }), player.node, hint, fieldset]);
      card.addEventListener("focusin", function () {
        setActive(player);
      });
      card.addEventListener("click", function () {
        setActive(player);
      });
      Object.assign(player, { card: card, fieldset: fieldset, hint: hint, slot: clip.slot });
      page.players.push(player);
      clips.appendChild(card);
    }
    setActive(page.players[0]);
    update();
    show("question");
    window.scrollTo(0, 0);
    $("question-text").focus();
  }

  function render(state) {
    say("");
    if (state.done) {
      for (const p of allPlayers()) p.audio.pause();
      page = null;
      $("code").textContent = state.completion_code || "";
      show("done");
      $("done-heading").focus();
      return;
    }
    renderItem(state);
  }

  async function submit() {
    if (!page) return;
    const ratings = {};
    const listened = {};
    for (const p of page.players) {
      ratings[p.slot] = ratingOf(p);
      listened[p.slot] = Math.round(p.listened * 1000) / 1000;
    }
    const elapsed = Math.max(0, Math.round(performance.now() - page.shownAt));
    $("next").disabled = true;
    say("Saving\u2026");
    try {
      const answer = await api("POST", "api/p/" + token + "/answer",
        { position: page.position, ratings: ratings, listened: listened, elapsed_ms: elapsed });
      render(answer.state);
    } catch (e) {
      if (e.status === 409 || e.status === 404) {
        await resume(e.status === 409 ? "This question was already answered; here is the next one." : null);
      } else {
        say("Your answer could not be saved (" + e.message + "). Press Next to try again.", true);
        update();
      }
    }
  }

  async function resume(message) {
    try {
      const state = await api("GET", "api/p/" + token + "/state");
      render(state);
      if (message) say(message);
    } catch (e) {
      if (e.status === 404) {
        forgetToken();
        welcome();
      } else {
        say("The test could not be loaded (" + e.message + "). Reload the page to try again.", true);
      }
    }
  }

  async function start() {
    $("start").disabled = true;
    say("Starting\u2026");
    const params = new URLSearchParams(location.search);
    const external = params.get("pid") || params.get("PROLIFIC_PID");
    try {
      const made = await api("POST", "api/participants", external ? { external_id: external } : {});
      keepToken(made.token);
      await resume(null);
    } catch (e) {
      say("The test could not be started (" + e.message + ").", true);
      $("start").disabled = false;
    }
  }

  function welcome() {
    const box = $("instructions");
    box.replaceChildren();
    for (const p of study.instructions) box.appendChild(el("p", { text: p }));
    $("size").textContent = study.items + " questions, about " + study.minutes + " minutes.";
    $("max-key").textContent = String(Math.min(study.scale.length, 9));
    $("start").disabled = false;
    show("welcome");
    say("");
  }

  document.addEventListener("keydown", function (event) {
    if (!page || $("question").hidden || event.ctrlKey || event.altKey || event.metaKey) return;
    if (!/^[1-9]$/.test(event.key)) return;
    const value = Number(event.key);
    if (value > study.scale.length) return;
    const target = event.target;
    if (target && target.tagName === "INPUT" && target.type !== "radio" && target.type !== "range") return;
    const player = page.active || page.players[0];
    if (!player.played) {
      say("Play clip " + player.slot + " to the end before rating it.", true);
      return;
    }
    const input = player.card.querySelector("input[value='" + value + "']");
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    say("Clip " + player.slot + " rated " + value + " (" + study.scale[value - 1] + ").");
    event.preventDefault();
  });

  $("start").addEventListener("click", start);
  $("next").addEventListener("click", submit);

  (async function init() {
    try {
      study = await api("GET", "api/study");
    } catch (e) {
      say("The test could not be loaded (" + e.message + "). Reload the page to try again.", true);
      return;
    }
    token = readToken();
    if (token) {
      keepToken(token);
      await resume(null);
    } else {
      welcome();
    }
  })();
})();
