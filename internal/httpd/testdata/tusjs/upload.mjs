// Uploads a file to Ferry with tus-js-client, resuming a previous attempt
// recorded in a URL store file. Test helper for internal/httpd (tusjs_test.go).
//
// node upload.mjs ENDPOINT TOKEN FILE REMOTE_PATH SHA256_HEX CHUNK_BYTES STORE_FILE
//
// Prints "resuming OFFSET" when it continues an earlier upload, "progress N"
// after every chunk the server acknowledged, and "done URL" at the end.
import fs from 'node:fs'
import * as tus from 'tus-js-client'

const [endpoint, token, file, remote, sha256, chunk, store] = process.argv.slice(2)
const size = fs.statSync(file).size

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  uploadSize: size,
  chunkSize: Number(chunk),
  headers: { Authorization: `Bearer ${token}` },
  metadata: { path: remote, sha256 },
  urlStorage: new tus.FileUrlStorage(store),
  storeFingerprintForResuming: true,
  removeFingerprintOnSuccess: true,
  retryDelays: [0, 500, 1000],
  onChunkComplete: (_size, sent) => console.log(`progress ${sent}`),
  onError: (err) => { console.error(`error ${err}`); process.exit(1) },
  onSuccess: () => console.log(`done ${upload.url}`),
})

const previous = await upload.findPreviousUploads()
if (previous.length > 0) {
  upload.resumeFromPreviousUpload(previous[0])
  console.log(`resuming ${previous[0].uploadUrl}`)
}
upload.start()
