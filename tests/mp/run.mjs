// node run.mjs WASM_DIR ROOT SCRIPT: runs SCRIPT on MicroPython's WebAssembly port (npm package
// @micropython/micropython-webassembly-pyscript, installed under WASM_DIR/node_modules) with
// ROOT/protocol copied into its file system.  Used by tests/protocol/test_micropython.py.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [wasmDir, root, script] = process.argv.slice(2);
const pkg = path.join(wasmDir, "node_modules", "@micropython",
                      "micropython-webassembly-pyscript", "micropython.mjs");
const { loadMicroPython } = await import(pathToFileURL(pkg).href);
const mp = await loadMicroPython({
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
mp.FS.mkdir("/lib");
mp.FS.mkdir("/lib/protocol");
for (const name of fs.readdirSync(path.join(root, "protocol"))) {
  if (name.endsWith(".py")) {
    mp.FS.writeFile("/lib/protocol/" + name, fs.readFileSync(path.join(root, "protocol", name)));
  }
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\n" + fs.readFileSync(script, "utf8"));
} catch (e) {
  process.stderr.write(String(e.message) + "\n");
  process.exitCode = 1;
}
