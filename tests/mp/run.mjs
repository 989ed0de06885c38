// node run.mjs WASM_DIR ROOT [--heapsize=N] [FILE ...]: a MicroPython 1.27 session (WebAssembly
// port, npm package @micropython/micropython-webassembly-pyscript under WASM_DIR/node_modules)
// serving requests.
//
// --heapsize=N: the GC heap the interpreter starts with, in bytes (the loader's default: 1 MiB).
// The port adds heap areas when one fills within a program (it collects only between programs),
// so N is not a hard limit: gc.mem_free() + gc.mem_alloc() grows when that happens, which is how
// tests/mp/test_board_memory.py proves a run stayed within N.
//
// At start the FILEs (paths relative to ROOT, e.g. firmware/pump.py) are copied into
// MicroPython's in-memory file system under /lib, which is first on sys.path.  Then it reads one
// JSON request per line on stdin and answers one JSON line on stdout:
//   {"op": "run", "code": SOURCE}        runs SOURCE in fresh globals (modules stay imported)
//                                        -> {"ok": true, "out": STDOUT} or
//                                           {"ok": false, "out": STDOUT, "error": TRACEBACK}
//   {"op": "write", "path": P, "b64": D} writes base64 D to P (folders made)  -> {"ok": true}
//   {"op": "read", "path": P}            reads P (no MicroPython heap used)
//                                        -> {"ok": true, "b64": D} or {"ok": false, "error": ...}
// The Python side is tests/mp/mpsession.py; stdin closed ends the session.
import fs from "fs";
import path from "path";
import readline from "readline";
import { pathToFileURL } from "url";

const [wasmDir, root, ...rest] = process.argv.slice(2);
const options = rest.filter((a) => a.startsWith("--"));
const files = rest.filter((a) => !a.startsWith("--"));
const heapOption = options.find((a) => a.startsWith("--heapsize="));
const heapsize = heapOption ? parseInt(heapOption.split("=")[1], 10) : undefined;
const pkg = path.join(wasmDir, "node_modules", "@micropython",
                      "micropython-webassembly-pyscript", "micropython.mjs");
const { loadMicroPython } = await import(pathToFileURL(pkg).href);

// Output arrives as raw bytes (no line buffering): a print without a newline is kept too.
let out = [];
const collect = (data) => out.push(Buffer.from(data));
const mp = await loadMicroPython(Object.assign(
  { stdout: collect, stderr: collect, linebuffer: false }, heapsize ? { heapsize } : {}));
const output = () => Buffer.concat(out).toString("utf8");

function mkdirs(dir) {
  let sofar = "";
  for (const part of dir.split("/").filter((p) => p)) {
    sofar += "/" + part;
    try {
      mp.FS.mkdir(sofar);
    } catch (e) {
      // already there
    }
  }
}

function writeFile(target, data) {
  mkdirs(path.posix.dirname(target));
  mp.FS.writeFile(target, data);
}

mkdirs("/lib");
for (const rel of files) {
  writeFile("/lib/" + rel, fs.readFileSync(path.join(root, rel)));
}
mp.runPython("import sys\nsys.path.insert(0, '/lib')\n");

// Each program runs from a file in fresh globals, so tracebacks name its lines.
const PROG = "/tmp/_program.py";
mkdirs("/tmp");
const RUNNER = "_g = {'__name__': '__main__', '__file__': '" + PROG + "'}\n" +
  "exec(compile(open('" + PROG + "').read(), '" + PROG + "', 'exec'), _g)\n" +
  "del _g\n";

function handle(req) {
  if (req.op === "write") {
    writeFile(req.path, Buffer.from(req.b64, "base64"));
    return { ok: true };
  }
  if (req.op === "read") {
    try {
      return { ok: true, b64: Buffer.from(mp.FS.readFile(req.path)).toString("base64") };
    } catch (e) {
      return { ok: false, out: "", error: "cannot read " + req.path + ": " + String(e) };
    }
  }
  if (req.op === "run") {
    out = [];
    writeFile(PROG, req.code);
    try {
      mp.runPython(RUNNER);
      return { ok: true, out: output() };
    } catch (e) {
      try {
        mp.runPython("_g = None\ndel _g\nimport gc\ngc.collect()\n");
      } catch (e2) {
        // nothing more to clean
      }
      return { ok: false, out: output(), error: String(e && e.message ? e.message : e) };
    }
  }
  return { ok: false, out: "", error: "unknown op " + JSON.stringify(req.op) };
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = handle(JSON.parse(line));
  } catch (e) {
    reply = { ok: false, out: "", error: "harness: " + String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
