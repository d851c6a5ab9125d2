// tongyi-vision's search page: plain JavaScript, no build step, nothing from outside the machine.
// It talks to the server's JSON endpoints (see tongyi_vision/ui/_app.py) and shows what they say.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const MAX_IMAGE_UPLOAD = 32 * 1024 * 1024;
  const MAX_VIDEO_UPLOAD = 256 * 1024 * 1024;

  const state = {
    last: null, // the last query, run again when the filters change
    sequence: 0, // answers to queries older than the latest are dropped
    usage: { queries: 0, free: 0, total_tokens: 0, text_tokens: 0, media_tokens: 0,
             requests: 0, cost_usd: 0 },
    summary: null,
    preview: null, // object URL of the picture being searched with
  };

  // --- formatting ---

  function dollars(value) {
    if (!value) return "$0";
    if (value >= 0.01) return "$" + value.toFixed(4);
    return "$" + value.toFixed(10).replace(/0+$/, "");
  }

  function bytes(value) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let size = value;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} bytes` : `${size.toFixed(1)} ${units[unit]}`;
  }

  function seconds(value) {
    return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/\.?0+$/, "");
  }

  function count(value) {
    return Number(value).toLocaleString("en");
  }

  function facts(list, pairs) {
    list.replaceChildren();
    for (const [term, detail] of pairs) {
      if (detail === undefined || detail === null || detail === "") continue;
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = String(detail);
      list.append(dt, dd);
    }
  }

  // --- messages ---

  function showError(message) {
    const box = $("#error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = $("#error");
    box.textContent = "";
    box.hidden = true;
  }

  function setStatus(text, picture) {
    const status = $("#status");
    status.replaceChildren(document.createTextNode(text));
    if (picture) {
      const img = document.createElement("img");
      img.className = "query-image";
      img.alt = "the picture searched with";
      img.src = picture;
      status.prepend(img);
    }
  }

  function busy(on) {
    $("#search-button").disabled = on;
    document.body.classList.toggle("busy", on);
  }

  // --- the summary ---

  async function loadSummary() {
    let response;
    try {
      response = await fetch("/api/summary", { cache: "no-store" });
    } catch (error) {
      showError(`The server does not answer (${error.message}). Is tongyi-vision ui still running?`);
      return;
    }
    const summary = await response.json();
    if (!response.ok) {
      showError(summary.error || `The summary failed (HTTP ${response.status}).`);
      return;
    }
    const first = state.summary === null;
    state.summary = summary;
    if (first) {
      $("#k").value = summary.default_k;
      $("#k").max = summary.max_k;
    }
    renderSummary();
  }

  function renderSummary() {
    const summary = state.summary;
    if (!summary) return;
    const index = summary.index;
    $("#index-name").textContent = index.path;
    const counts = index.counts;
    facts($("#index-facts"), [
      ["name", index.name],
      ["items", `${count(index.items)} (${count(counts.text)} text, ${count(counts.image)} images, ` +
                `${count(counts.video)} video clips)`],
      ["model", index.model],
      ["dimension", index.dimension],
      ["dialect", index.dialect],
      ["size on disk", bytes(index.bytes_on_disk)],
      ["search", index.ann ? "approximate (ANN index)" : "exact"],
      ["clips of", `${seconds(index.clip_seconds)} s`],
      ["created", index.created],
    ]);
    const usage = state.usage;
    facts($("#usage-facts"), [
      ["queries", `${count(usage.queries)}` + (usage.free ? ` (${count(usage.free)} free)` : "")],
      ["tokens", `${count(usage.total_tokens)} (text ${count(usage.text_tokens)}, ` +
                 `media ${count(usage.media_tokens)})`],
      ["requests", count(usage.requests)],
      ["cost", dollars(usage.cost_usd)],
    ]);
    const service = summary.service;
    $("#billing-note").textContent = service.emulated
      ? "Queries go to the bundled emulator, which bills nothing: the cost above is what the " +
        "real service would charge for these tokens."
      : "The cost above is estimated from the provider's price list; the bill comes from the " +
        "provider.";
    $("#service-note").textContent = service.description || "";
  }

  // --- queries ---

  function filters() {
    const kinds = [...document.querySelectorAll('#filters input[name="kind"]:checked')]
      .map((box) => box.value);
    const k = Number.parseInt($("#k").value, 10);
    return { kinds, k: Number.isFinite(k) ? k : undefined };
  }

  function request(query, chosen) {
    if (query.type === "file") {
      const params = new URLSearchParams({ name: query.file.name || "", kinds: chosen.kinds.join(",") });
      if (chosen.k !== undefined) params.set("k", String(chosen.k));
      return [`/api/search/${query.medium}?${params}`, {
        method: "POST",
        headers: { "Content-Type": query.file.type || "application/octet-stream" },
        body: query.file,
      }];
    }
    const body = { kinds: chosen.kinds, k: chosen.k };
    if (query.type === "like") body.like = query.id;
    else body.text = query.text;
    return ["/api/search", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }];
  }

  function describe(query) {
    if (query.type === "text") return `\u201c${query.text}\u201d`;
    if (query.type === "like") return `items like ${query.name}`;
    return `the ${query.medium} ${query.file.name || "dropped"}`;
  }

  async function run(query) {
    const chosen = filters();
    clearError();
    if (chosen.kinds.length === 0) {
      showError("Choose at least one kind to show: text, images or video clips.");
      return;
    }
    if (query.type === "file") {
      const limit = query.medium === "video" ? MAX_VIDEO_UPLOAD : MAX_IMAGE_UPLOAD;
      if (query.file.size > limit) {
        showError(`${query.file.name} is ${bytes(query.file.size)}; the page takes a ` +
                  `${query.medium} of up to ${bytes(limit)}.`);
        return;
      }
    }
    state.last = query;
    const sequence = ++state.sequence;
    const picture = query.type === "file" && query.medium === "image" ? state.preview : null;
    setStatus(`Searching for ${describe(query)}\u2026`, picture);
    busy(true);
    let response;
    let answer;
    try {
      const [url, options] = request(query, chosen);
      response = await fetch(url, options);
      const text = await response.text();
      try {
        answer = JSON.parse(text);
      } catch {
        answer = { error: text.slice(0, 300) || `HTTP ${response.status}` };
      }
    } catch (error) {
      if (sequence === state.sequence) {
        busy(false);
        setStatus("");
        showError(`The search failed: ${error.message}. Is tongyi-vision ui still running?`);
      }
      return;
    }
    if (sequence !== state.sequence) return;
    busy(false);
    if (!response.ok) {
      setStatus("");
      $("#results").replaceChildren();
      const why = answer.reason || answer.error || `HTTP ${response.status}`;
      showError(`Could not search with ${describe(query)}: ${why}`);
      return;
    }
    account(answer.usage);
    render(answer.results);
    const usage = answer.usage;
    let cost;
    if (query.type === "like") cost = "nothing sent: searched by the item's stored vector";
    else if (usage.requests === 0 && usage.cached) cost = "the same query as before: nothing sent";
    else cost = `${count(usage.total_tokens)} tokens, ${dollars(usage.cost_usd)}`;
    const found = answer.results.length;
    setStatus(`${found} result${found === 1 ? "" : "s"} for ${describe(query)} in ` +
              `${Math.round(answer.timing_ms.total)} ms (${cost})`, picture);
    loadSummary();
  }

  function account(usage) {
    const total = state.usage;
    total.queries += 1;
    if (!usage.requests) total.free += 1;
    for (const name of ["total_tokens", "text_tokens", "media_tokens", "requests", "cost_usd"]) {
      total[name] += usage[name] || 0;
    }
    renderSummary();
  }

  function searchFile(file, medium) {
    if (!file) return;
    if (state.preview) URL.revokeObjectURL(state.preview);
    $("#query").value = ""; // the grid is about the file now, not the text typed before
    state.preview = medium === "image" ? URL.createObjectURL(file) : null;
    run({ type: "file", file, medium });
  }

  // What a file is, for the endpoint it goes to: by its type, else by its name (a system may
  // give no type for a .mkv); the server checks the content either way.
  const VIDEO_NAME = /\.(mp4|m4v|mov|mpe?g|mpg|webm|mkv|avi|flv)$/i;

  function mediumOf(file) {
    const type = file.type || "";
    if (type.startsWith("video/")) return "video";
    if (type.startsWith("image/")) return "image";
    return VIDEO_NAME.test(file.name || "") ? "video" : "image";
  }

  // --- results ---

  function label(result) {
    if (result.kind === "video" && result.start_seconds !== null) {
      return `${result.name} [${seconds(result.start_seconds)}\u2013${seconds(result.end_seconds)} s]`;
    }
    const chunk = result.metadata && result.metadata.chunks > 1
      ? ` (part ${result.metadata.chunk + 1} of ${result.metadata.chunks})` : "";
    return result.name + chunk;
  }

  function detailPairs(result) {
    const meta = result.metadata || {};
    const pairs = [["source", result.source]];
    if (result.id !== result.source) pairs.push(["id", result.id]);
    if (meta.width && meta.height) pairs.push(["size", `${meta.width} \u00d7 ${meta.height} px`]);
    if (meta.bytes) pairs.push(["file", bytes(meta.bytes)]);
    if (result.kind === "video" && result.start_seconds !== null) {
      pairs.push(["clip", `${seconds(result.start_seconds)}\u2013${seconds(result.end_seconds)} s`]);
    }
    if (typeof meta.duration === "number") pairs.push(["video length", `${seconds(meta.duration)} s`]);
    const shown = new Set(["width", "height", "bytes", "start_seconds", "end_seconds", "file_name",
                           "duration"]);
    for (const [key, value] of Object.entries(meta)) {
      if (shown.has(key)) continue;
      pairs.push([key.replaceAll("_", " "), typeof value === "object" ? JSON.stringify(value) : value]);
    }
    pairs.push(["score", result.score.toFixed(6)]);
    return pairs;
  }

  function mediaOf(result) {
    if (result.kind === "text") {
      const text = document.createElement("p");
      text.className = "text";
      text.textContent = result.text || "";
      return text;
    }
    if (!result.media_url) {
      const missing = document.createElement("span");
      missing.className = "missing";
      missing.textContent = "no local file to show";
      return missing;
    }
    if (result.kind === "image") {
      const img = document.createElement("img");
      img.className = "thumb";
      img.alt = result.name;
      img.decoding = "async";
      img.src = result.thumb_url;
      img.addEventListener("error", () => {
        const missing = document.createElement("span");
        missing.className = "missing";
        missing.textContent = "no preview (the file is gone or cannot be read)";
        img.replaceWith(missing);
      }, { once: true });
      return img;
    }
    return clipPlayer(result);
  }

  function clipPlayer(result) {
    const video = document.createElement("video");
    video.className = "clip";
    video.controls = true;
    video.muted = true;
    video.playsInline = true;
    // Nothing is fetched until the clip is played: the grid shows its thumbnail as the poster.
    video.preload = "none";
    const start = result.start_seconds || 0;
    const end = result.end_seconds;
    video.dataset.start = String(start);
    if (end !== null && end !== undefined) video.dataset.end = String(end);
    if (result.thumb_url) video.poster = result.thumb_url;
    // The media fragment starts the clip at its time; the handlers below keep it in its range
    // when a browser ignores the fragment or the user plays it again.
    video.src = `${result.media_url}#t=${start}` + (end ? `,${end}` : "");
    const toStart = () => {
      if (video.currentTime < start || (end && video.currentTime >= end)) video.currentTime = start;
    };
    video.addEventListener("loadedmetadata", toStart);
    video.addEventListener("play", toStart);
    video.addEventListener("timeupdate", () => {
      if (end && video.currentTime >= end && !video.paused) video.pause();
    });
    return video;
  }

  function render(results) {
    const grid = $("#results");
    const template = $("#card-template");
    const cards = results.map((result) => {
      const card = template.content.firstElementChild.cloneNode(true);
      card.classList.add(`kind-${result.kind}`);
      card.dataset.id = result.id;
      card.dataset.kind = result.kind;
      card.dataset.rank = String(result.rank);
      card.querySelector(".media").append(mediaOf(result));
      card.querySelector(".score").textContent = result.score.toFixed(4);
      card.querySelector(".kind").textContent = result.kind;
      const name = card.querySelector(".name");
      name.textContent = label(result);
      const pairs = detailPairs(result);
      card.title = pairs.map(([term, detail]) => `${term}: ${detail}`).join("\n");
      facts(card.querySelector(".facts"), pairs);
      if (result.media_url) {
        const open = document.createElement("a");
        open.href = result.media_url;
        open.target = "_blank";
        open.rel = "noopener";
        open.textContent = "Open the file";
        card.querySelector(".details").append(open);
      }
      card.querySelector(".like").addEventListener("click", () => {
        run({ type: "like", id: result.id, name: label(result) });
      });
      return card;
    });
    grid.replaceChildren(...cards);
  }

  // --- wiring ---

  function wire() {
    $("#text-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("#query").value.trim();
      if (!text) {
        showError("Type something to search for.");
        return;
      }
      run({ type: "text", text });
    });
    $("#file-input").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) searchFile(file, mediumOf(file));
      event.target.value = "";
    });
    // The zone shows where to drop; a file dropped anywhere on the page is searched with
    // (rather than the browser leaving the page to show it).
    const zone = $("#drop-zone");
    for (const name of ["dragenter", "dragover"]) {
      window.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.add("over");
      });
    }
    window.addEventListener("dragleave", (event) => {
      if (!event.relatedTarget) zone.classList.remove("over");
    });
    window.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (!file) {
        showError("Drop a file: an image or a video.");
        return;
      }
      searchFile(file, mediumOf(file));
    });
    $("#filters").addEventListener("change", () => {
      if (state.last) run(state.last);
    });
  }

  wire();
  loadSummary();
})();
