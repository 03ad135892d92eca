import { createInterface } from 'node:readline';

/** Reads all of stdin (a pipe), without the final newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Prompts on the terminal without echoing what is typed. */
function prompt(question: string): Promise<string> {
  return new Promise((resolvePromise) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const output = rl as unknown as { _writeToOutput: (s: string) => void };
    process.stderr.write(question);
    output._writeToOutput = () => {}; // no echo
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolvePromise(answer);
    });
  });
}

/**
 * A secret from stdin when it is piped, or from a prompt (asked twice) on a terminal; never from
 * argv, where other users of the machine and the shell history would see it.
 */
export async function readSecret(what: string): Promise<string> {
  if (!process.stdin.isTTY) return readStdin();
  const first = await prompt(`${what}: `);
  const second = await prompt(`${what} (again): `);
  if (first !== second) throw new Error('the two entries differ');
  return first;
}
