// The page: uploads (picker and drag and drop), the gallery with live statuses from GET /events,
// and the graph playground.

import { formatBytes, getJSON, uploadImage } from "./api.js";
import { Gallery } from "./gallery.js";
import { Playground } from "./playground.js";

const PAGE_SIZE = 12;
const PARALLEL_UPLOADS = 3;
const RECONNECT_MS = 5000;
const $ = (id) => document.getElementById(id);

const playground = new Playground(document);
const gallery = new Gallery($("cards"), {
  onTry(id) {
    playground.selectImage(id);
    $("playground").scrollIntoView({ behavior: "smooth", block: "start" });
    $("graph").focus({ preventScroll: true });
  },
  onChange: () => scheduleSync(),
});

// -- the gallery and the playground's image list ---------------------------------------------

let syncQueued = false;
function scheduleSync() {
  if (syncQueued) return;
  syncQueued = true;
  queueMicrotask(() => {
    syncQueued = false;
    const images = gallery.all();
    $("gallery-empty").hidden = images.length > 0;
    $("more").hidden = !gallery.more;
    playground.setImages(images, (i) => {
      const name = gallery.names.get(i.id) || `Image ${i.id.slice(-6)}`;
      const dims = i.width ? `, ${i.width}×${i.height}` : "";
      return `${name} (${(i.format || "").toUpperCase()}${dims}, ${formatBytes(i.bytes)})`;
    });
  });
}

function showGalleryError(message) {
  $("gallery-error").textContent = message;
  $("gallery-error").hidden = !message;
}

async function loadPage() {
  const more = $("more");
  more.disabled = true;
  try {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (gallery.oldest && gallery.more) q.set("cursor", gallery.oldest);
    const page = await getJSON(`/images?${q}`);
    gallery.page(page.images, page.next_cursor);
    showGalleryError("");
  } catch (e) {
    showGalleryError(`The gallery could not be loaded: ${e.message}`);
  } finally {
    more.disabled = false;
    scheduleSync();
  }
}

$("more").addEventListener("click", loadPage);

// -- live updates ----------------------------------------------------------------------------

const live = $("live");
function setLive(state, text) {
  live.dataset.state = state;
  live.textContent = text;
}

/** Images still moving: read again, for changes made while no stream was open. */
async function catchUp() {
  await Promise.all(gallery.unfinished().map(async (id) => {
    try {
      gallery.upsert(await getJSON(`/images/${id}`));
    } catch {
      // the next event or reconnection will tell
    }
  }));
}

function connect() {
  const source = new EventSource("/events");
  const count = () => { live.dataset.events = String(Number(live.dataset.events) + 1); };
  source.addEventListener("open", () => {
    setLive("live", "live");
    catchUp();
  });
  source.addEventListener("image", (e) => {
    count();
    gallery.upsert(JSON.parse(e.data));
  });
  source.addEventListener("task", (e) => {
    count();
    gallery.task(JSON.parse(e.data));
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      // the server refused the stream (e.g. a proxy's 502): EventSource gives up, we do not
      setLive("offline", "offline, retrying…");
      setTimeout(connect, RECONNECT_MS);
    } else {
      setLive("reconnecting", "reconnecting…");
    }
  });
}

// -- uploading -------------------------------------------------------------------------------

function uploadRow(file) {
  const row = document.createElement("li");
  const name = document.createElement("span");
  name.className = "file";
  name.textContent = file.name || "image";
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `Uploading ${name.textContent}`);
  row.append(name, progress);
  $("uploads").append(row);
  return { row, progress, name };
}

function failed(ui, message) {
  ui.row.className = "error";
  ui.progress.remove();
  const text = document.createElement("span");
  text.className = "message";
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "dismiss";
  close.textContent = "×";
  close.setAttribute("aria-label", `Dismiss the error about ${ui.name.textContent}`);
  close.addEventListener("click", () => ui.row.remove());
  ui.row.append(text, close);
}

async function uploadOne(file) {
  const ui = uploadRow(file);
  try {
    const image = await uploadImage(file, (f) => { ui.progress.value = f; });
    gallery.named(image.id, file.name || "image");
    gallery.upsert(image);
    ui.row.remove();
  } catch (e) {
    failed(ui, e.message);
  }
}

async function uploadAll(files) {
  const queue = [...files];
  const next = async () => {
    while (queue.length) await uploadOne(queue.shift());
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, next));
}

const picker = $("files");
picker.addEventListener("change", () => {
  const files = [...picker.files];
  picker.value = "";
  uploadAll(files);
});

// Drag and drop anywhere on the page (a drop outside the zone must not open the file instead).
const drop = $("drop");
let dragDepth = 0;
const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
document.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  dragDepth += 1;
  drop.classList.add("over");
});
document.addEventListener("dragleave", (e) => {
  if (!hasFiles(e)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) drop.classList.remove("over");
});
document.addEventListener("dragover", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = "copy";
});
document.addEventListener("drop", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  drop.classList.remove("over");
  uploadAll(e.dataTransfer.files);
});

// -- start -----------------------------------------------------------------------------------

connect();
loadPage();
getJSON("/graphs")
  .then((body) => playground.setGraphs(body.graphs))
  .catch((e) => playground.showError(`The graphs could not be loaded: ${e.message}`));
