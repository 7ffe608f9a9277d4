// The gallery: one card per uploaded image, newest first, kept up to date from the API's answers
// and the live events. A state older than the one shown (events can repeat or arrive after a
// fresher read) is ignored: statuses only move forward.

import { FINAL, formatBytes, rank, saving } from "./api.js";

const LABELS = {
  pending: "pending",
  processing: "processing",
  completed: "completed",
  completed_with_errors: "completed with warnings",
  failed: "failed",
};
const THUMB = 320;

function newer(a, b) {
  const d = rank(a.status) - rank(b.status);
  return d > 0 || (d === 0 && a.updated_at > b.updated_at);
}

export function thumbnail(id, width) {
  const q = new URLSearchParams({ input: `upload:${id}`, width: String(width) });
  return `/graph/passthrough.webp?${q}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

export class Gallery {
  /** @param {HTMLUListElement} list  @param {{onTry: Function, onChange: Function}} hooks */
  constructor(list, hooks) {
    this.list = list;
    this.hooks = hooks;
    this.images = new Map();
    this.cards = new Map();
    this.names = new Map(); // file names of this session's uploads (the API does not keep them)
    this.oldest = null; // id of the last image of the last page read
    this.more = false; // more pages follow
  }

  /** Images newest first (ids sort by creation time). */
  all() {
    return [...this.images.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  }

  page(images, nextCursor) {
    for (const image of images) this.upsert(image, true);
    if (images.length) this.oldest = images[images.length - 1].id;
    this.more = nextCursor != null;
  }

  /** Show an image record (an upload's answer, a page, an event, a re-read). */
  upsert(image, fromPage = false) {
    const known = this.images.get(image.id);
    if (known && !newer(image, known)) return;
    // An unknown image older than the pages read belongs to a page not loaded yet.
    if (!known && !fromPage && this.more && this.oldest && image.id < this.oldest) return;
    this.images.set(image.id, image);
    let card = this.cards.get(image.id);
    if (!card) {
      card = this.card(image);
      this.cards.set(image.id, card);
      this.insert(card, image.id);
    }
    this.fill(card, image);
    this.hooks.onChange();
  }

  /** Remember the file name of an upload made from this page, and show it. */
  named(id, name) {
    this.names.set(id, name);
    const image = this.images.get(id);
    if (image) this.fill(this.cards.get(id), image);
  }

  /** A task event: moves the card's status on before the image's own event brings the sizes. */
  task(task) {
    const image = task.image_id && this.images.get(task.image_id);
    if (!image || image.task_id !== task.id || rank(task.status) <= rank(image.status)) return;
    const moved = { ...image, status: task.status, warnings: task.warnings, error: task.error };
    this.images.set(image.id, moved);
    this.fill(this.cards.get(image.id), moved);
    this.hooks.onChange();
  }

  unfinished() {
    return [...this.images.values()].filter((i) => !FINAL.has(i.status)).map((i) => i.id);
  }

  insert(card, id) {
    for (const other of this.list.children) {
      if (other.dataset.id < id) {
        this.list.insertBefore(card, other);
        return;
      }
    }
    this.list.append(card);
  }

  card(image) {
    const img = el("img", {
      src: thumbnail(image.id, THUMB),
      srcset: `${thumbnail(image.id, THUMB)} 1x, ${thumbnail(image.id, 2 * THUMB)} 2x`,
      loading: "lazy",
      decoding: "async",
      width: THUMB,
      height: 240,
      alt: "",
    });
    img.addEventListener("error", () => img.closest(".thumb").classList.add("broken"), { once: true });
    const thumb = el("a", { className: "thumb", target: "_blank", rel: "noopener" }, img);
    const badge = el("span", { className: "badge" });
    const title = el("h3", { className: "name" });
    const sizes = el("dl", { className: "sizes" },
      el("dt", {}, "Original"), el("dd", { className: "original" }),
      el("dt", {}, "Compressed"), el("dd", { className: "compressed" }),
      el("dt", {}, "Saving"), el("dd", { className: "saving" }));
    const note = el("p", { className: "note" });
    const compressed = el("a", { className: "compressed-link", target: "_blank", rel: "noopener" },
      "Compressed");
    const tryIt = el("button", { type: "button", className: "button secondary small" }, "Try a graph");
    tryIt.addEventListener("click", () => this.hooks.onTry(image.id));
    const actions = el("p", { className: "actions" }, compressed, tryIt);
    const card = el("li", { className: "card" }, thumb,
      el("div", { className: "body" }, el("div", { className: "head" }, title, badge), sizes, note, actions));
    card.dataset.id = image.id;
    return card;
  }

  fill(card, image) {
    const $ = (sel) => card.querySelector(sel);
    const name = this.names.get(image.id) || `Image ${image.id.slice(-6)}`;
    const dims = image.width ? ` ${image.width}×${image.height}` : "";
    const kind = `${(image.format || "").toUpperCase()}${dims}`;
    card.dataset.status = image.status;
    $(".name").textContent = name;
    $(".name").title = `${name} (uploaded ${new Date(image.created_at).toLocaleString()})`;
    $(".thumb").href = image.original_url;
    $(".thumb img").alt = `${name}: ${kind}`;
    $(".badge").textContent = LABELS[image.status] || image.status;
    $(".badge").dataset.status = image.status;
    $(".original").textContent = `${formatBytes(image.bytes)} · ${kind}`;
    const done = image.compressed_bytes != null;
    $(".compressed").textContent = done ? formatBytes(image.compressed_bytes)
      : image.status === "failed" ? "–" : "…";
    $(".saving").textContent = done ? saving(image.bytes, image.compressed_bytes) : "";
    const link = $(".compressed-link");
    link.hidden = !image.compressed_url;
    if (image.compressed_url) link.href = image.compressed_url;
    const note = $(".note");
    const problems = image.status === "failed" && image.error
      ? [image.error.message || image.error.code] : image.warnings || [];
    note.textContent = problems.join(" · ");
    note.hidden = !problems.length;
    note.className = image.status === "failed" ? "note error" : "note";
  }
}
