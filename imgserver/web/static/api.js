// Talking to the imgserver API. A failed request becomes an ApiError carrying the API's own
// message ({"error": {"code", "message"}}), so the page can show people what went wrong.

export const STATUSES = ["pending", "processing", "completed", "completed_with_errors", "failed"];
export const FINAL = new Set(STATUSES.slice(2));
// What browsers send for <img>: the playground fetches with it, so a negotiated URL gives the
// same format in the playground as in an <img> elsewhere.
export const IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";

export class ApiError extends Error {
  constructor(message, status = 0, code = "") {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** An ApiError from a failed answer: the API's message, or the status when it has none. */
export function errorFrom(status, statusText, body) {
  try {
    const err = JSON.parse(body).error;
    if (err && err.message) return new ApiError(err.message, status, err.code || "");
  } catch {
    // not JSON: a proxy's own page
  }
  if (!status) return new ApiError("The server could not be reached.");
  const phrase = status === 413 ? "the file is too large" : statusText || "error";
  return new ApiError(`The server answered ${status} (${phrase}).`, status);
}

export async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch {
    throw new ApiError("The server could not be reached.");
  }
  const body = await response.text();
  if (!response.ok) throw errorFrom(response.status, response.statusText, body);
  return JSON.parse(body);
}

/** POST one file to /images (multipart field "image"); resolves to the image record. */
export function uploadImage(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/images");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status !== 201) {
        reject(errorFrom(xhr.status, xhr.statusText, xhr.responseText));
        return;
      }
      try {
        resolve(JSON.parse(xhr.responseText));
      } catch {
        reject(new ApiError("The server's answer was not JSON."));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError("The upload failed: the connection was lost.")));
    const form = new FormData();
    form.append("image", file, file.name || "image");
    xhr.send(form);
  });
}

export function rank(status) {
  return STATUSES.indexOf(status);
}

export function formatBytes(n) {
  if (n == null) return "–";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB"];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "34% smaller", "12% larger" or "same size", from the original and the compressed sizes. */
export function saving(original, compressed) {
  if (!original || compressed == null) return "";
  const pct = Math.round((1 - compressed / original) * 1000) / 10;
  if (pct > 0) return `${pct}% smaller`;
  if (pct < 0) return `${-pct}% larger`;
  return "same size";
}
