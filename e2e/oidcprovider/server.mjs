// A real OpenID Provider for Gantry's SSO tests: the certified npm package
// oidc-provider, on 127.0.0.1, with one confidential client and test users
// in groups. Configuration comes from the environment:
//   OP_PORT           port to listen on (0: any; the chosen one is printed)
//   OP_CLIENT_ID      client id
//   OP_CLIENT_SECRET  client secret
//   OP_REDIRECT_URI   the client's redirect URI (Gantry's /auth/callback)
//   OP_USERS          JSON {"login": {"name": ..., "email": ..., "groups": [...]}}
// It prints "listening <issuer>" once ready. Logins use oidc-provider's
// development interactions (a login form and a consent form); any password
// is accepted for a known login, an unknown login is refused.
import http from 'node:http';
import Provider from 'oidc-provider';

const users = JSON.parse(process.env.OP_USERS || '{}');
const port = Number(process.env.OP_PORT || 0);

const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OP_CLIENT_ID,
    client_secret: process.env.OP_CLIENT_SECRET,
    redirect_uris: [process.env.OP_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  // Claims in the ID token itself (not only at userinfo), as most IdPs can.
  conformIdTokenClaims: false,
  cookies: { keys: ['gantry-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    const u = users[sub];
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: u.name, preferred_username: sub, email: u.email, groups: u.groups || [] };
      },
    };
  },
});
provider.proxy = false;
server.on('request', provider.callback());
console.log(`listening ${issuer}`);
