// The graph playground: a form built from GET /graphs (one control per parameter type), the
// URL it makes (only parameters that differ from their defaults go into it), and its result.
// A result can be the input of the next run (a chained request: input=/graph/…), and a string
// parameter that names an image (transform's watermark) offers the uploaded images.

import { ApiError, errorFrom, formatBytes, IMAGE_ACCEPT } from "./api.js";

const URL_CHOICE = "url";
const MAX_RESULTS = 8; // earlier results offered as inputs
const IMAGE_PARAM = /watermark$/; // string parameters that name another image

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function hexColor(value) {
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})([0-9a-f]{2})?$/i.exec(String(value || ""));
  if (!m) return null;
  const h = m[1].length === 3 ? [...m[1]].map((c) => c + c).join("") : m[1];
  return `#${h.toLowerCase()}`;
}

function describe(spec) {
  const bits = [];
  if (spec.description) bits.push(spec.description);
  if (spec.minimum != null || spec.maximum != null) {
    bits.push(`Range ${spec.minimum ?? "…"}–${spec.maximum ?? "…"}.`);
  }
  if (spec.default != null) bits.push(`Default ${spec.default}.`);
  return bits.join(" ");
}

/** One parameter's control: {row, read()} where read() is the URL value or null (default). */
function control(name, spec) {
  const id = `p-${name}`;
  const help = el("small", { id: `${id}-desc` }, describe(spec));
  const label = el("label", { htmlFor: id }, name);
  const attrs = { id, name };
  let input;
  let read;
  let use = null;
  switch (spec.type) {
    case "int":
    case "number": {
      // an int that also takes words (quality: auto) is typed as text, the words offered
      const words = spec.type === "int" && spec.values && spec.values.length ? spec.values : null;
      input = el("input", { ...attrs, type: words ? "text" : "number",
        step: spec.type === "int" ? "1" : "any",
        inputMode: spec.type === "int" ? "numeric" : "decimal" });
      if (words) {
        const list = el("datalist", { id: `${id}-words` },
          ...words.map((w) => el("option", { value: w })));
        input.setAttribute("list", list.id);
        help.append(" ", `Or: ${words.join(", ")}.`, list);
      }
      if (spec.minimum != null) input.min = spec.minimum;
      if (spec.maximum != null) input.max = spec.maximum;
      if (spec.default != null) input.value = spec.default;
      else input.placeholder = "not set";
      read = () => {
        const raw = input.value.trim();
        if (raw === "" || raw === String(spec.default)) return null;
        if (spec.default != null && !words?.includes(raw) && Number(raw) === Number(spec.default)) {
          return null;
        }
        return raw;
      };
      break;
    }
    case "bool": {
      input = el("input", { ...attrs, type: "checkbox", checked: Boolean(spec.default) });
      read = () => (input.checked === Boolean(spec.default) ? null : String(input.checked));
      break;
    }
    case "enum": {
      input = el("select", attrs);
      if (spec.default == null) input.append(el("option", { value: "" }, "(not set)"));
      for (const v of spec.values || []) input.append(el("option", { value: v }, v));
      input.value = spec.default ?? "";
      read = () => (input.value === "" || input.value === spec.default ? null : input.value);
      break;
    }
    case "color": {
      const initial = hexColor(spec.default);
      input = el("input", { ...attrs, type: "color", value: initial || "#000000" });
      if (initial == null) {
        use = el("input", { type: "checkbox", id: `${id}-use` });
        input.addEventListener("input", () => { use.checked = true; });
      }
      read = () => {
        if (use && !use.checked) return null;
        return input.value.toLowerCase() === initial ? null : input.value;
      };
      break;
    }
    default: {
      // a curve's points "in:out,…" may be longer than a string (graphschema.py's MAX_CURVE)
      const maxLength = spec.type === "curve" ? 1024 : 256;
      input = el("input", { ...attrs, type: "text", maxLength, value: spec.default ?? "" });
      if (IMAGE_PARAM.test(name)) {
        input.type = "url";
        input.placeholder = "https://example.com/logo.png or upload:{id}";
        input.setAttribute("list", "uploaded-images");
      }
      read = () => {
        const v = input.value;
        return v === "" || v === (spec.default ?? "") ? null : v;
      };
    }
  }
  input.setAttribute("aria-describedby", help.id);
  const row = el("div", { className: `field param ${spec.type}` });
  if (spec.type === "bool") row.append(el("span", { className: "check" }, input, label), help);
  else row.append(label, input, help);
  if (use) row.insertBefore(el("span", { className: "check" }, use, el("label", { htmlFor: use.id }, "use this colour")), help);
  return { row, read };
}

export class Playground {
  constructor(root) {
    const $ = (id) => root.querySelector(`#${id}`);
    this.form = $("play");
    this.graphSelect = $("graph");
    this.graphDesc = $("graph-desc");
    this.inputSelect = $("input");
    this.urlField = $("url-field");
    this.urlInput = $("input-url");
    this.format = $("format");
    this.params = $("params");
    this.runButton = $("run");
    this.error = $("play-error");
    this.result = $("result");
    this.resultUrl = $("result-url");
    this.info = $("result-info");
    this.img = $("result-img");
    this.copyButton = $("copy");
    this.graphs = {};
    this.controls = new Map();
    this.objectUrl = null;
    this.chosen = false;
    this.results = []; // [{path, label}] of earlier runs, newest first
    this.runs = 0;
    this.images = [];
    this.imageLabel = (i) => i.id;
    this.inputField = this.inputSelect.closest(".field");
    this.uploaded = el("datalist", { id: "uploaded-images" });
    this.form.append(this.uploaded);

    this.graphSelect.addEventListener("change", () => this.build());
    this.inputSelect.addEventListener("change", () => {
      this.chosen = true; // from now on keep this choice; until then follow the newest image
      this.toggleUrl();
    });
    $("reset").addEventListener("click", () => this.build());
    this.copyButton.addEventListener("click", () => this.copy());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.run();
    });
  }

  setGraphs(graphs) {
    this.graphs = graphs;
    const names = Object.keys(graphs).sort();
    this.graphSelect.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    this.graphSelect.value = names.includes("resize") ? "resize" : names[0];
    this.build();
  }

  build() {
    const graph = this.graphs[this.graphSelect.value];
    this.controls.clear();
    const legend = el("legend", {}, "Parameters");
    if (!graph) {
      this.params.replaceChildren(legend);
      return;
    }
    this.graphDesc.textContent = graph.description || "";
    const needsInput = graph.needs_input !== false; // canvas, delaunay_triangles: no input
    this.inputField.hidden = !needsInput;
    if (!needsInput) this.urlField.hidden = true;
    else this.toggleUrl();
    const rows = Object.entries(graph.params).map(([name, spec]) => {
      const c = control(name, spec);
      this.controls.set(name, c);
      return c.row;
    });
    this.params.replaceChildren(legend, ...rows);
  }

  /** The input choices: this page's images (newest first), earlier results (a chained
   * request), then a URL of your own. */
  setImages(images, label) {
    this.images = images;
    this.imageLabel = label;
    this.setInputs();
  }

  setInputs() {
    const chosen = this.chosen ? this.inputSelect.value : null;
    const usable = this.images.filter((i) => i.status !== "failed");
    const options = usable.map((i) => el("option", { value: `upload:${i.id}` }, this.imageLabel(i)));
    for (const r of this.results) options.push(el("option", { value: r.path }, r.label));
    options.push(el("option", { value: URL_CHOICE }, "An image URL…"));
    this.uploaded.replaceChildren(
      ...usable.map((i) => el("option", { value: `upload:${i.id}` }, this.imageLabel(i))),
    );
    const key = options.map((o) => `${o.value} ${o.textContent}`).join("\n");
    if (key === this.optionsKey) return; // unchanged: leave an open list alone
    this.optionsKey = key;
    this.inputSelect.replaceChildren(...options);
    const values = options.map((o) => o.value);
    this.inputSelect.value = values.includes(chosen) ? chosen : values[0];
    this.toggleUrl();
  }

  selectImage(id) {
    this.chosen = true;
    this.inputSelect.value = `upload:${id}`;
    this.toggleUrl();
  }

  toggleUrl() {
    this.urlField.hidden = this.inputField.hidden || this.inputSelect.value !== URL_CHOICE;
    this.urlInput.required = !this.urlField.hidden;
  }

  /** Offer a result as the input of later runs (newest first, a few at most). */
  remember(path) {
    this.runs += 1;
    const spec = path.split("?")[0].slice("/graph/".length);
    const earlier = this.results.filter((r) => r.path !== path);
    this.results = [{ path, label: `Result of ${spec} (run ${this.runs})` }, ...earlier]
      .slice(0, MAX_RESULTS);
    this.setInputs();
  }

  /** The request path for the form, e.g. /graph/resize.webp?input=upload%3A…&width=300 */
  path() {
    const query = new URLSearchParams();
    if (!this.inputField.hidden) {
      const input = this.inputSelect.value === URL_CHOICE ? this.urlInput.value.trim()
        : this.inputSelect.value;
      if (!input) throw new ApiError("Choose an uploaded image, or type the URL of an image.");
      query.append("input", input);
    }
    for (const [name, c] of this.controls) {
      const value = c.read();
      if (value !== null) query.append(name, value);
    }
    const ext = this.format.value ? `.${this.format.value}` : "";
    return `/graph/${encodeURIComponent(this.graphSelect.value)}${ext}?${query}`;
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  async run() {
    this.showError("");
    let path;
    try {
      path = this.path();
    } catch (e) {
      this.showError(e.message);
      return;
    }
    this.resultUrl.value = new URL(path, window.location.href).href;
    this.result.hidden = false;
    this.info.textContent = "Running…";
    this.runButton.disabled = true;
    const started = performance.now();
    try {
      let src = path;
      let size = "";
      try {
        const response = await fetch(path, { headers: { Accept: IMAGE_ACCEPT } });
        if (!response.ok) throw errorFrom(response.status, response.statusText, await response.text());
        const blob = await response.blob();
        src = URL.createObjectURL(blob);
        size = `${blob.type}, ${formatBytes(blob.size)}, `;
      } catch (e) {
        if (e instanceof ApiError) throw e;
        // fetch refused (a redirect to another origin without CORS): the <img> can still load it
      }
      await this.show(src, path);
      this.remember(path);
      const ms = Math.round(performance.now() - started);
      this.info.textContent = `${this.img.naturalWidth}×${this.img.naturalHeight} ${size}${ms} ms`;
    } catch (e) {
      this.img.hidden = true;
      this.info.textContent = "";
      this.showError(e instanceof ApiError ? e.message : "The result could not be loaded.");
    } finally {
      this.runButton.disabled = false;
    }
  }

  show(src, path) {
    return new Promise((resolve, reject) => {
      const img = this.img;
      img.onload = () => resolve();
      img.onerror = () => reject(new ApiError("The result is not an image this browser shows."));
      img.alt = `Result of ${decodeURIComponent(path)}`;
      img.hidden = false;
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = src.startsWith("blob:") ? src : null;
      img.src = src;
    });
  }

  async copy() {
    const text = this.resultUrl.value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      this.resultUrl.select(); // no clipboard API (plain http on another host): the old way
      document.execCommand("copy");
    }
    this.copyButton.textContent = "Copied";
    setTimeout(() => { this.copyButton.textContent = "Copy"; }, 1500);
  }
}
