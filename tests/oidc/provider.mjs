// A real OpenID provider for the console's sign-in tests: panva's oidc-provider (OpenID Certified) with its
// own development login and consent forms, static clients and accounts from the command line.
//
//   node provider.mjs '<json: {"clients": [...], "accounts": {"<login>": {"email": ..., "email_verified": ...}}}>'
//
// It listens on a free port of 127.0.0.1 and prints one line, {"issuer": "http://127.0.0.1:<port>"}, once it
// serves: the test fixture waits for that line instead of polling (no race over a port chosen beforehand).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const { clients, accounts } = JSON.parse(process.argv[2]);

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  // A fresh signing key per run: the relying party must take it from the provider's JWKS, nothing else.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    // Put the scope's claims in the ID token too, as Google, Entra ID and Keycloak do: the console reads
    // the e-mail from the verified ID token, not from a second call.
    conformIdTokenClaims: false,
    async findAccount(ctx, sub) {
      const claims = accounts[sub];
      if (!claims) return undefined;
      return { accountId: sub, async claims() { return { sub, ...claims }; } };
    },
  });
  // Quiet: the development-interactions warning goes to stderr, which the fixture shows only on failure.
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
// The fixture closes stdin when the session ends; a killed pytest leaves no provider behind either.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
