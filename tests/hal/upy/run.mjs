// node run.mjs WASM_DIR ROOT SCRIPT FILE...: runs SCRIPT on MicroPython's WebAssembly port (npm
// package @micropython/micropython-webassembly-pyscript under WASM_DIR/node_modules) with each
// FILE (a path relative to ROOT, e.g. hal/io_server.py) copied to /lib/FILE in its file system,
// and /lib on sys.path.  Used by tests/hal/test_serial_io.py.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [wasmDir, root, script, ...files] = process.argv.slice(2);
const pkg = path.join(wasmDir, "node_modules", "@micropython",
                      "micropython-webassembly-pyscript", "micropython.mjs");
const { loadMicroPython } = await import(pathToFileURL(pkg).href);
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
const made = new Set();
function mkdirs(dir) {
  let at = "";
  for (const part of dir.split("/").filter(Boolean)) {
    at += "/" + part;
    if (!made.has(at)) {
      try { mp.FS.mkdir(at); } catch (e) { /* exists */ }
      made.add(at);
    }
  }
}
for (const file of files) {
  const target = "/lib/" + file;
  mkdirs(path.posix.dirname(target));
  mp.FS.writeFile(target, fs.readFileSync(path.join(root, file)));
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\n" + fs.readFileSync(script, "utf8"));
} catch (e) {
  process.stderr.write(String(e.message) + "\n");
  process.exitCode = 1;
}
