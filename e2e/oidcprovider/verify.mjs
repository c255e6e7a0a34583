// Verifies a Gantry run token with the npm package jose, independently of
// Gantry's Go code: discovery document, JWKS over HTTP, signature, issuer,
// audience, expiry. Usage: node verify.mjs ISSUER AUDIENCE < token
// Prints the claims as JSON, or exits 1 with the error.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, audience] = process.argv.slice(2);
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const token = Buffer.concat(chunks).toString().trim();
try {
  const conf = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  if (conf.issuer !== issuer) throw new Error(`discovery names issuer ${conf.issuer}`);
  const jwks = createRemoteJWKSet(new URL(conf.jwks_uri));
  const { payload } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ['RS256', 'ES256'] });
  console.log(JSON.stringify(payload));
} catch (e) {
  console.error(`verification failed: ${e.code || ''} ${e.message}`);
  process.exit(1);
}
