// The shop page's behaviour: the "how this page was served" image table, the review form,
// and following a new photo until its cutout is ready. No framework, no build step.
"use strict";

const token = document.body.dataset.token;
const consistency = document.body.dataset.consistency;
const imageRows = document.querySelector("#images tbody");
const FOLLOW_SECONDS = 120;

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function loaded(img) {
  if (img.complete) return Promise.resolve();
  return new Promise((done) => {
    img.addEventListener("load", done, { once: true });
    img.addEventListener("error", done, { once: true });
  });
}

// The edge's cache status for the image's own load, from its Server-Timing header (the
// edge sends Timing-Allow-Origin, so this page may read it); null if the browser has none.
function loadCacheStatus(url) {
  const entries = performance.getEntriesByName(url, "resource");
  for (const entry of entries.reverse()) {
    const timing = (entry.serverTiming || []).find((t) => t.name === "edge-cache");
    if (timing && timing.description) return timing.description;
  }
  return null;
}

// One row per image: the edge's answer for it (status, X-Cache-Status, which edge).
async function describe(img) {
  const row = imageRows.insertRow();
  const [name, status, cache, edge] = [0, 1, 2, 3].map(() => row.insertCell());
  name.textContent = new URL(img.src).pathname.replace(/^\/media\//, "");
  name.title = img.src;
  await loaded(img);
  try {
    // The edge allows any origin to read these headers (the media are public).
    const reply = await fetch(img.src, { method: "HEAD", cache: "force-cache" });
    status.textContent = reply.status;
    // The image's own load when the browser timed it; else the edge's answer to this HEAD.
    cache.textContent =
      loadCacheStatus(img.src) || reply.headers.get("X-Cache-Status") || "(none)";
    edge.textContent = reply.headers.get("X-Served-By") || "(none)";
  } catch (err) {
    status.textContent = "failed";
    cache.textContent = String(err);
  }
  row.dataset.src = img.src;
  row.classList.add("described");
}

function showCutout(slot, photo) {
  const board = document.createElement("div");
  board.className = "checkerboard";
  const img = document.createElement("img");
  img.className = "cutout";
  img.alt = "the reviewer, cut out";
  img.src = photo.cutout_url;
  img.dataset.cdn = "";
  if (photo.mask_url) {
    img.dataset.mask = photo.mask_url;
    img.style.setProperty("--mask", `url(${JSON.stringify(photo.mask_url)})`);
  }
  board.append(img);
  const caption = document.createElement("figcaption");
  caption.textContent = "cutout (transparent where the checkerboard shows)";
  slot.replaceChildren(board, caption);
  describe(img);
}

// Poll the API (with the consistency token) until a worker has cut the reviewer out.
async function follow(review) {
  const slot = review.querySelector(".cutout-slot");
  const progress = slot.querySelector(".progress");
  const headers = consistency ? { "X-Consistency-Token": consistency } : {};
  const until = performance.now() + FOLLOW_SECONDS * 1000;
  while (performance.now() < until) {
    let answer;
    try {
      const reply = await fetch(`/api/reviews/${review.dataset.reviewId}`, { headers });
      answer = await reply.json();
      if (!reply.ok) {
        progress.textContent = `cutout: ${answer.error ? answer.error.message : reply.status}`;
        return;
      }
    } catch (err) {
      progress.textContent = `cutout: the API did not answer (${err}); retrying`;
      await sleep(1000);
      continue;
    }
    const photo = answer.photo;
    if (photo.status === "ready") return showCutout(slot, photo);
    if (photo.status === "failed") {
      progress.className = "failed";
      progress.textContent = `cutout failed: ${photo.error}`;
      return;
    }
    const waited = (Date.now() - Date.parse(answer.created_at)) / 1000;
    progress.textContent =
      `cutout: processing for ${Math.max(0, waited).toFixed(1)} s ` +
      `(the review is stored; a segmentation worker is cutting the photo out)`;
    await sleep(400);
  }
  progress.textContent = "cutout: still processing; reload the page later";
}

// Post the form to the API; on success read the page again: the API's consistency cookie makes
// that read see the new review (read-your-writes), whichever replica answers.
const form = document.querySelector("#review-form");
const errorLine = document.querySelector("#post-error");
const statusLine = document.querySelector("#post-status");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  errorLine.hidden = true;
  statusLine.textContent = "posting…";
  button.disabled = true;
  const data = new FormData(form);
  if (data.get("photo") && data.get("photo").size === 0) data.delete("photo");
  try {
    const reply = await fetch("/api/reviews", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      body: data,
    });
    if (reply.status === 201) {
      // Review ids are 64-bit: the JSON carries them as strings, so JSON.parse keeps them.
      const { id } = await reply.json();
      statusLine.textContent = `review ${id} stored; reading the page again…`;
      window.location.assign(`/?posted=${id}#review-${id}`);
      return;
    }
    const answer = await reply.json().catch(() => null);
    const message = answer && answer.error ? answer.error.message : reply.statusText;
    errorLine.textContent = `The API answered ${reply.status}: ${message}`;
    errorLine.hidden = false;
    // A 4xx means the API refused the review; a 503 may have kept it (its message says so).
    statusLine.textContent = reply.status < 500 ? "nothing was saved" : "";
  } catch (err) {
    errorLine.textContent = `The API did not answer: ${err}`;
    errorLine.hidden = false;
    statusLine.textContent = "";
  } finally {
    button.disabled = false;
  }
});

document.querySelectorAll("img[data-cdn]").forEach(describe);
document.querySelectorAll('.review[data-photo-status="processing"]').forEach(follow);
