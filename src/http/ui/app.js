// The page: draw on a 32×32 bitmap, reduce it exactly as the UCI optdigits data set was made
// (4×4 blocks, each value the number of set cells, 0..=16), and ask /v1/predict as you draw.
"use strict";
(() => {
  const N = 32, BLOCK = 4, SIDE = 8, CELL = 8, BRUSH = 1.15;
  // The first image of each digit in tests/data/digits.csv.gz, one base-17 character per pixel.
  const EXAMPLES = [
    "005d910000dfaf5003f20b8004c008800580098004b01c7002e5ac00006da000",
    "000cd500000bg900003fg60007fgg200001gg300001gg600001gg600000bga00",
    "0004fc00003gfe00008d8g000016fb00018df10009gg500003dggb500003bg90",
    "007fd10008d6f400021dd000002fb1000001cc1000001a8000845e90007dd900",
    "0001b00000078000001d6220007f098005ga0g6004fgdg100003fa000002g400",
    "00ca000000egge0000dgfa1000bgg70000047g7000004g900054cg40009gga00",
    "000cd000005g800000dg300000ed000000fc720000dgdg30007gbf800019fb30",
    "0078dgf100774bc000008d100488ff6002bff400000g5000009f100000d50000",
    "009e810000ceec00009a0f40003gce20004gg20003g8ad2001f13g8000bgfb10",
    "00bc000002gggd0003gcae0001g1cf0000dg9f20000309b000009f40009cd300",
  ].map((s) => Array.from(s, (c) => parseInt(c, 17)));

  /** The 64 model inputs of a 32×32 bitmap (row-major, 1 = drawn). */
  function reduce(bits) {
    const out = new Array(SIDE * SIDE).fill(0);
    for (let y = 0; y < N; y++)
      for (let x = 0; x < N; x++)
        if (bits[y * N + x]) out[Math.floor(y / BLOCK) * SIDE + Math.floor(x / BLOCK)]++;
    return out;
  }

  // Cells of a 4×4 block filled first to last: centre, then edges, then corners.
  const FILL = [5, 6, 9, 10, 1, 2, 4, 8, 7, 11, 13, 14, 0, 3, 12, 15];
  /** A 32×32 bitmap whose reduction is `row` (how an example is drawn on the pad). */
  function expand(row) {
    const bits = new Uint8Array(N * N);
    row.forEach((count, b) => {
      const top = Math.floor(b / SIDE) * BLOCK, left = (b % SIDE) * BLOCK;
      for (let i = 0; i < count; i++) bits[(top + (FILL[i] >> 2)) * N + left + (FILL[i] & 3)] = 1;
    });
    return bits;
  }

  const $ = (id) => document.getElementById(id);
  const pad = $("pad"), ctx = pad.getContext("2d");
  const bitmap = new Uint8Array(N * N);
  const cursor = { x: 16, y: 16 };
  let labels = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let last = null, timer = 0, seq = 0;

  function stamp(cx, cy) {
    for (let y = Math.floor(cy - BRUSH); y <= Math.ceil(cy + BRUSH); y++)
      for (let x = Math.floor(cx - BRUSH); x <= Math.ceil(cx + BRUSH); x++)
        if (x >= 0 && y >= 0 && x < N && y < N && (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= BRUSH * BRUSH)
          bitmap[y * N + x] = 1;
  }

  function line(from, to) {
    const steps = Math.max(1, Math.ceil(Math.hypot(to.x - from.x, to.y - from.y) * 2));
    for (let i = 0; i <= steps; i++)
      stamp(from.x + ((to.x - from.x) * i) / steps, from.y + ((to.y - from.y) * i) / steps);
  }

  function render() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.fillStyle = "#1d1d1f";
    for (let i = 0; i < N * N; i++)
      if (bitmap[i]) ctx.fillRect((i % N) * CELL, Math.floor(i / N) * CELL, CELL, CELL);
    ctx.strokeStyle = "#eee";
    for (let b = 1; b < SIDE; b++) {
      ctx.beginPath();
      ctx.moveTo(b * BLOCK * CELL + 0.5, 0); ctx.lineTo(b * BLOCK * CELL + 0.5, pad.height);
      ctx.moveTo(0, b * BLOCK * CELL + 0.5); ctx.lineTo(pad.width, b * BLOCK * CELL + 0.5);
      ctx.stroke();
    }
    if (document.activeElement === pad) {
      ctx.strokeStyle = "#c2410c";
      ctx.strokeRect(cursor.x * CELL + 0.5, cursor.y * CELL + 0.5, CELL - 1, CELL - 1);
    }
    const input = reduce(bitmap);
    $("grid").querySelectorAll("span").forEach((cell, i) => {
      cell.textContent = input[i];
      cell.style.background = `rgba(194, 65, 12, ${input[i] / 16})`;
      cell.style.color = input[i] > 9 ? "#fff" : "#1d1d1f";
    });
    return input;
  }

  // With --api-key set, /v1 asks for a bearer key: the page asks the person once and keeps it
  // for this tab only.
  let apiKey = sessionStorage.getItem("ember-api-key") || "";
  const authorized = (headers = {}) => (apiKey ? { ...headers, authorization: `Bearer ${apiKey}` } : headers);
  function askForKey(rejected) {
    $("key").hidden = false;
    showError(rejected ? "This API key was not accepted." : "This server asks for an API key.");
    $("key-input").focus();
  }
  $("key").addEventListener("submit", (e) => {
    e.preventDefault();
    apiKey = $("key-input").value.trim();
    sessionStorage.setItem("ember-api-key", apiKey);
    $("key").hidden = true;
    showError("");
    loadModel();
    predict();
  });

  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function showAnswer(prediction) {
    const bars = $("bars").children;
    if (!prediction) {
      $("label").innerHTML = '<span class="muted">Draw something</span>';
      for (const li of bars) { li.querySelector("i").style.width = "0"; li.querySelector(".pct").textContent = ""; }
      return;
    }
    $("label").innerHTML = "";
    $("label").append(prediction.label, Object.assign(document.createElement("small"),
      { textContent: ` ${(prediction.confidence * 100).toFixed(1)} % sure` }));
    prediction.probabilities.forEach((p, i) => {
      bars[i].querySelector("i").style.width = `${(p * 100).toFixed(1)}%`;
      bars[i].querySelector(".pct").textContent = `${(p * 100).toFixed(1)} %`;
      bars[i].setAttribute("aria-label", `${labels[i]}: ${(p * 100).toFixed(1)} percent`);
    });
  }

  async function predict() {
    const input = reduce(bitmap), mine = ++seq;
    if (!input.some((v) => v > 0)) { showAnswer(null); showError(""); return; }
    try {
      const res = await fetch("/v1/predict", {
        method: "POST",
        headers: authorized({ "content-type": "application/json" }),
        body: JSON.stringify({ inputs: [input] }),
      });
      const body = await res.json().catch(() => ({}));
      if (mine !== seq) return; // a newer drawing already asked
      if (res.status === 401) { askForKey(Boolean(apiKey)); return; }
      if (!res.ok) throw new Error(body.detail || body.title || `HTTP ${res.status}`);
      showError("");
      showAnswer(body.predictions[0]);
    } catch (e) {
      if (mine === seq) showError(`Prediction failed: ${e.message}`);
    }
  }

  function changed(now) {
    render();
    clearTimeout(timer);
    timer = setTimeout(predict, now ? 0 : 120);
  }

  function at(event) {
    const r = pad.getBoundingClientRect();
    return { x: ((event.clientX - r.left) / r.width) * N, y: ((event.clientY - r.top) / r.height) * N };
  }

  pad.addEventListener("pointerdown", (e) => {
    pad.setPointerCapture(e.pointerId);
    last = at(e);
    stamp(last.x, last.y);
    changed();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    line(last, p);
    last = p;
    changed();
  });
  for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { last = null; });

  function clear() { bitmap.fill(0); changed(true); }

  pad.addEventListener("keydown", (e) => {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[e.key]) {
      cursor.x = Math.min(N - 1, Math.max(0, cursor.x + moves[e.key][0]));
      cursor.y = Math.min(N - 1, Math.max(0, cursor.y + moves[e.key][1]));
      if (e.shiftKey) stamp(cursor.x + 0.5, cursor.y + 0.5);
    } else if (e.key === " " || e.key === "Enter") {
      stamp(cursor.x + 0.5, cursor.y + 0.5);
    } else if (e.key === "Delete" || e.key === "Backspace") {
      bitmap.fill(0);
    } else return;
    e.preventDefault();
    changed();
  });
  pad.addEventListener("focus", render);
  pad.addEventListener("blur", render);
  $("clear").addEventListener("click", clear);

  EXAMPLES.forEach((row, digit) => {
    const b = Object.assign(document.createElement("button"), { type: "button", textContent: digit });
    b.setAttribute("aria-label", `Load an example ${digit} from the data set`);
    b.addEventListener("click", () => { bitmap.set(expand(row)); changed(true); });
    $("examples").append(b);
  });
  for (let i = 0; i < SIDE * SIDE; i++) $("grid").append(Object.assign(document.createElement("span"), { role: "cell" }));
  for (let i = 0; i < 10; i++) {
    const li = document.createElement("li");
    li.innerHTML = `<span>${i}</span><span class="bar"><i></i></span><span class="pct"></span>`;
    $("bars").append(li);
  }

  // A form per model of the repository, built from its metadata: a text box per input (its
  // values, comma- or space-separated), one row per submit, the answer read by output name.
  function modelForms(models) {
    const box = $("model-forms");
    box.replaceChildren();
    $("models").hidden = models.length === 0;
    for (const m of models) {
      const form = Object.assign(document.createElement("form"), { className: "model-form" });
      form.dataset.model = m.name;
      form.append(
        Object.assign(document.createElement("h3"), { textContent: `${m.name} ${m.version}` }),
        Object.assign(document.createElement("p"), { className: "hint", textContent: m.description }),
      );
      const fields = m.inputs.map((t) => {
        const width = t.shape.slice(1).reduce((a, b) => a * b, 1);
        const range = [t.min !== undefined ? `≥ ${t.min}` : "", t.max !== undefined ? `≤ ${t.max}` : ""].filter(Boolean).join(", ");
        const area = Object.assign(document.createElement("textarea"), {
          name: t.name, rows: 3, required: true, spellcheck: false,
          placeholder: `${width} numbers${range ? ` (${range})` : ""}, comma-separated`,
        });
        const label = Object.assign(document.createElement("label"), { textContent: `${t.name} · ${t.datatype} [${t.shape.join(", ")}]` });
        label.append(area);
        form.append(label);
        return { tensor: t, area };
      });
      const output = document.createElement("output");
      output.setAttribute("aria-live", "polite");
      form.append(Object.assign(document.createElement("button"), { type: "submit", textContent: "Predict" }), output);
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        predictRow(m, fields, output);
      });
      box.append(form);
    }
  }

  async function predictRow(m, fields, output) {
    const row = {};
    for (const { tensor, area } of fields) {
      const values = area.value.split(/[\s,]+/).filter(Boolean).map(Number);
      if (values.some(Number.isNaN)) { show(output, `${tensor.name}: not all numbers`, true); return; }
      row[tensor.name] = values;
    }
    const instance = fields.length === 1 ? row[fields[0].tensor.name] : row;
    try {
      const res = await fetch(`/v1/models/${encodeURIComponent(m.name)}:predict`, {
        method: "POST",
        headers: authorized({ "content-type": "application/json" }),
        body: JSON.stringify({ instances: [instance] }),
      });
      const body = await res.json().catch(() => ({}));
      if (res.status === 401) { askForKey(Boolean(apiKey)); return; }
      if (!res.ok) throw new Error(body.detail || body.title || `HTTP ${res.status}`);
      const [answer] = body.predictions;
      const byName = m.outputs.length === 1 ? { [m.outputs[0].name]: answer } : answer;
      show(output, m.outputs.map((t) => describe(t, byName[t.name])).join(" · "), false);
    } catch (err) {
      show(output, `Prediction failed: ${err.message}`, true);
    }
  }

  // A labelled output reads as its most probable label; any other as its values.
  function describe(tensor, values) {
    if (!tensor.labels || !tensor.labels.length) return `${tensor.name}: ${values.map((v) => +v.toFixed(4)).join(", ")}`;
    const best = values.indexOf(Math.max(...values));
    return `${tensor.labels[best]} (${(values[best] * 100).toFixed(1)} %)`;
  }

  function show(output, text, failed) {
    output.textContent = text;
    output.classList.toggle("failed", failed);
  }

  function loadModel() {
    fetch("/v1/models", { headers: authorized() })
      .then((r) => {
        if (r.status === 401) { $("model").textContent = ""; askForKey(Boolean(apiKey)); return null; }
        return r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`));
      })
      .then((body) => {
        if (!body) return;
        const [m, ...others] = body.models;
        modelForms(others.filter((o) => Array.isArray(o.inputs)));
        labels = m.labels;
        $("bars").querySelectorAll("li > span:first-child").forEach((s, i) => { s.textContent = labels[i]; });
        $("model").textContent = `${m.name} ${m.version} · ${m.backend} on ${m.device} · held-out accuracy ${(m.held_out_accuracy * 100).toFixed(2)} %`;
      })
      .catch((e) => { $("model").textContent = ""; showError(`Could not read /v1/models: ${e.message}`); });
  }
  loadModel();

  render();
  showAnswer(null);
  // For the browser tests: the functions that ship, and the pad's state.
  window.ember = { reduce, expand, bitmap, examples: EXAMPLES, N };
})();
