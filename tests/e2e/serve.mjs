// `pggan serve` of the checkout at `root` on a free port (the page's e2e and
// bench/browser_vs_native.mjs): resolves with the server process and its URL once it prints it.
import { spawn } from "node:child_process";
import { join } from "node:path";

export function serve(root) {
  const server = spawn(join(root, "target/release/pggan"), ["serve", "--port", "0", "--no-build", "--root", root], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((ok, no) => {
    let text = "";
    server.stdout.on("data", (d) => {
      text += d;
      const url = text.match(/http:\/\/[^\s]+/);
      if (url) ok({ server, url: url[0] });
    });
    server.on("exit", (code) => no(new Error(`pggan serve exited with ${code}: ${text}`)));
  });
}
