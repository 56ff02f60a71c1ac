// idp.mjs -- a real OpenID provider for the tests: panva's oidc-provider (a certified OP) with its built-in
// login and consent pages (devInteractions). Whatever login name is typed becomes the subject; the
// password is ignored. It checks client authentication, redirect_uri, PKCE, single-use codes, and signs
// RS256 ID tokens with a key made fresh at every start (so the relying party must use its JWKS).
//
// usage: IDP_HOST=127.0.0.2 IDP_PORT=9090 IDP_REDIRECTS=url1,url2 node idp.mjs
//   IDP_CLIENT_ID / IDP_CLIENT_SECRET (test-client / test-secret), IDP_EMAIL_DOMAIN (example.test).
// Prints "listening <issuer>" when ready.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const host = env.IDP_HOST || '127.0.0.2';
const port = Number(env.IDP_PORT || 9090);
const issuer = `http://${host}:${port}`;
const domain = env.IDP_EMAIL_DOMAIN || 'example.test';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-rs256', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env.IDP_CLIENT_ID || 'test-client',
    client_secret: env.IDP_CLIENT_SECRET || 'test-secret',
    redirect_uris: (env.IDP_REDIRECTS || '').split(',').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [jwk] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'email', 'profile'],
  conformIdTokenClaims: false, // e-mail and name in the ID token too, not only from userinfo
  pkce: { required: () => true, methods: ['S256'] },
  cookies: { keys: ['conduix-cp-test-cookie-key-0123456789'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@${domain}`, email_verified: true, name: `Test ${sub}` };
      },
    };
  },
  ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 60, Session: 3600, Interaction: 600, Grant: 3600 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(port, host, () => console.log(`listening ${issuer}`));
