// The page's shell: checks for WebGPU, loads the WASM package, runs the self-test on request.
import init, { selftest } from "../pkg/pggan.js";

const status = document.getElementById("status");
const button = document.getElementById("selftest");
const output = document.getElementById("output");

function fail(message) {
  status.textContent = message;
  status.className = "error";
}

async function main() {
  if (!navigator.gpu) {
    fail("This browser has no WebGPU (navigator.gpu is missing). Use a current Chrome or Edge, " +
      "or enable WebGPU in your browser's flags (chrome://flags/#enable-unsafe-webgpu).");
    return;
  }
  await init();
  status.textContent = "Ready.";
  button.disabled = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Running the self-test…";
    try {
      output.textContent = await selftest();
      status.textContent = "Done.";
    } catch (e) {
      fail(`The self-test could not run: ${e}`);
    }
    button.disabled = false;
  });
}

main().catch((e) => fail(`Could not start: ${e}`));
