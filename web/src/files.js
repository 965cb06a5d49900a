// Uploads on a folder page: drag and drop (files and whole folders) or the
// file pickers, one tus upload per file to /web/uploads/ with a progress
// bar each and overall, pause and resume, and automatic resume after a
// network drop. Authenticated by the session cookie plus the page's CSRF
// token in X-CSRF-Token. Built by scripts/build-web.sh into
// internal/httpd/web/static/files.js.
import { Upload } from 'tus-js-client';

const CHUNK = 16 << 20; // one PATCH per 16 MiB: progress on the server between drops
const RETRY = [0, 1000, 2000, 3000, 5000, 5000, 10000, 10000, 15000, 20000, 30000, 30000];
const AGAIN_MS = 15000; // after the retries run out, try again this often while offline

const drop = document.getElementById('drop');
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

if (drop) init();

function init() {
  const folder = drop.dataset.folder;
  const self = drop.dataset.self;
  const status = document.getElementById('upload-status');
  const overall = document.getElementById('overall');
  const overallText = document.getElementById('overall-text');
  const queue = document.getElementById('queue');
  const jobs = [];

  const join = (dir, rel) => (dir === '/' ? '' : dir) + '/' + rel;
  const escape = (p) => p.split('/').map(encodeURIComponent).join('/');

  function update() {
    let sent = 0;
    let total = 0;
    let done = 0;
    let failed = 0;
    for (const j of jobs) {
      sent += j.sent;
      total += j.file.size;
      if (j.state === 'done') done++;
      if (j.state === 'failed') failed++;
    }
    overall.max = total || 1;
    overall.value = total ? sent : done ? 1 : 0;
    overall.dataset.sent = String(sent);
    let text = `${done} of ${jobs.length} files uploaded, ${fmt(sent)} of ${fmt(total)}`;
    if (failed) text += `, ${failed} failed`;
    if (done + failed === jobs.length) {
      text += '. ';
      overallText.textContent = text;
      const a = document.createElement('a');
      a.href = location.pathname + location.search;
      a.textContent = 'Show the new files';
      a.id = 'uploads-done';
      overallText.append(a);
    } else {
      overallText.textContent = text;
    }
  }

  function addJob(file, rel) {
    const dest = join(folder, rel);
    const li = document.createElement('li');
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = rel;
    const bar = document.createElement('progress');
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute('aria-label', `Upload of ${rel}`);
    const msg = document.createElement('span');
    msg.className = 'msg';
    msg.setAttribute('role', 'status');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'secondary';
    btn.textContent = 'Pause';
    btn.setAttribute('aria-label', `Pause ${rel}`);
    li.append(label, bar, msg, btn);
    queue.append(li);

    const job = { file, rel, dest, sent: 0, state: 'waiting', bar, msg, btn, li, timer: 0 };
    jobs.push(job);
    job.upload = new Upload(file, {
      endpoint: '/web/uploads/',
      headers: { 'X-CSRF-Token': csrf },
      metadata: { path: dest },
      chunkSize: CHUNK,
      retryDelays: RETRY,
      removeFingerprintOnSuccess: true,
      // One entry per destination and content, so that a reload resumes
      // the same upload and another folder starts its own.
      fingerprint: async (f) => ['ferry', location.host, dest, f.size, f.lastModified].join(':'),
      onProgress(sent) {
        job.sent = sent;
        bar.value = sent;
        msg.textContent = `${Math.floor((100 * sent) / (file.size || 1))}%`;
        update();
      },
      onSuccess() {
        clearTimeout(job.timer);
        job.state = 'done';
        job.sent = file.size;
        bar.value = bar.max;
        msg.textContent = 'Uploaded';
        btn.remove();
        li.classList.add('done');
        update();
      },
      onError(err) {
        const reason = serverMessage(err);
        if (reason === null) {
          // The network is gone for longer than the retries: wait for it
          // and carry on from where the server is.
          job.state = 'offline';
          msg.textContent = 'Connection lost; will resume';
          job.timer = setTimeout(() => start(job), AGAIN_MS);
          return;
        }
        job.state = 'failed';
        msg.textContent = reason;
        li.classList.add('failed');
        btn.remove();
        update();
      },
    });
    btn.addEventListener('click', () => {
      if (job.state === 'paused') {
        start(job);
      } else if (job.state === 'running' || job.state === 'offline') {
        clearTimeout(job.timer);
        job.state = 'paused';
        job.upload.abort();
        btn.textContent = 'Resume';
        btn.setAttribute('aria-label', `Resume ${rel}`);
        msg.textContent = 'Paused';
      }
    });
    return job;
  }

  async function start(job) {
    clearTimeout(job.timer);
    job.state = 'running';
    job.btn.textContent = 'Pause';
    job.btn.setAttribute('aria-label', `Pause ${job.rel}`);
    job.msg.textContent = 'Uploading';
    if (!job.resumed) {
      job.resumed = true;
      const previous = await job.upload.findPreviousUploads();
      if (previous.length) job.upload.resumeFromPreviousUpload(previous[0]);
    }
    job.upload.start();
  }

  window.addEventListener('online', () => {
    for (const j of jobs) if (j.state === 'offline') start(j);
  });

  // Folders first (parents before children), then the files, one at a
  // time in turn so that each gets the connection's full speed.
  async function enqueue(items) {
    if (!items.length) return;
    status.hidden = false;
    const dirs = [...new Set(items.filter((i) => i.dir).map((i) => i.dir))].sort(
      (a, b) => a.split('/').length - b.split('/').length,
    );
    for (const d of dirs) {
      const err = await mkdir(d);
      if (err) {
        overallText.textContent = err;
        return;
      }
    }
    const mine = items.filter((i) => i.file).map((i) => addJob(i.file, i.rel));
    update();
    for (const job of mine) {
      await new Promise((resolve) => {
        const done = () => (job.state === 'done' || job.state === 'failed' ? resolve() : setTimeout(done, 200));
        start(job);
        done();
      });
    }
  }

  async function mkdir(rel) {
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : '/' + rel.slice(0, slash);
    const name = rel.slice(slash + 1);
    const body = new URLSearchParams({ csrf, name });
    const res = await fetch('/mkdir' + (self + escape(parent) || '/'), { method: 'POST', body, redirect: 'manual' });
    // A redirect (opaque here) means created; 409 that it exists already.
    if (res.type === 'opaqueredirect' || res.ok || res.status === 409) return null;
    return `Could not create folder ${rel} (${res.status}): ${await pageError(res)}`;
  }

  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    enqueue(await fromDataTransfer(e.dataTransfer));
  });
  document.getElementById('pick-files').addEventListener('change', (e) => {
    enqueue([...e.target.files].map((file) => ({ file, rel: file.name })));
    e.target.value = '';
  });
  document.getElementById('pick-folder').addEventListener('change', (e) => {
    const items = [];
    for (const file of e.target.files) {
      const rel = file.webkitRelativePath || file.name;
      const parts = rel.split('/');
      for (let i = 1; i < parts.length; i++) items.push({ dir: parts.slice(0, i).join('/') });
      items.push({ file, rel });
    }
    enqueue(items);
    e.target.value = '';
  });
}

// fromDataTransfer lists what was dropped: files, and folders walked
// recursively. The entries must be taken before the first await.
async function fromDataTransfer(dt) {
  const entries = [...dt.items]
    .filter((i) => i.kind === 'file')
    .map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.some(Boolean)) return [...dt.files].map((file) => ({ file, rel: file.name }));
  const out = [];
  for (const e of entries) if (e) await walk(e, '', out);
  return out;
}

async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((res, rej) => entry.file(res, rej));
    out.push({ file, rel: prefix + entry.name });
    return;
  }
  if (!entry.isDirectory) return;
  const dir = prefix + entry.name;
  out.push({ dir });
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
    if (!batch.length) break;
    for (const e of batch) await walk(e, dir + '/', out);
  }
}

// serverMessage is Ferry's reason for refusing an upload, or null when the
// request never got an answer (the network).
function serverMessage(err) {
  const res = err && err.originalResponse;
  if (!res || !res.getStatus()) return null;
  try {
    const body = JSON.parse(res.getBody());
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not Ferry's JSON
  }
  return `The server refused the upload (${res.getStatus()})`;
}

async function pageError(res) {
  const html = await res.text();
  const doc = new DOMParser().parseFromString(html, 'text/html');
  const el = doc.querySelector('[role=alert], main p');
  return el ? el.textContent.trim() : res.statusText;
}

function fmt(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
