// fakeop.mjs -- a scripted OpenID provider for the refusal tests: it signs whatever ID token the test
// asks for (wrong iss, aud or nonce, expired, alg none, HS256 keyed with the RSA public key, an unknown
// kid, ES256 …) and can be made slow. It still checks what a relying party must send: PKCE S256 (the
// verifier of the challenge), single-use codes, redirect_uri and the client secret.
//
// usage: FAKE_HOST=127.0.0.2 FAKE_PORT=9091 node fakeop.mjs      prints "listening <issuer>" when ready
// control: POST /control {"mode": "...", "delay_ms": {"discovery": 0, "token": 0, "jwks": 0, "me": 0},
//                         "sub": "...", "email": "...", "email_verified": true, "name": "...", "userinfo": {...}}
//          GET /stats -> {"discovery": n, "jwks": n, "token": n, "me": n, "authorize": n}
import { createHash, createHmac, createSign, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';

const host = process.env.FAKE_HOST || '127.0.0.2';
const port = Number(process.env.FAKE_PORT || 9091);
const issuer = `http://${host}:${port}`;
const CLIENT_ID = process.env.FAKE_CLIENT_ID || 'fake-client';
const CLIENT_SECRET = process.env.FAKE_CLIENT_SECRET || 'fake-secret';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
const jwks = {
  keys: [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'k-rsa', use: 'sig', alg: 'RS256' },
    { ...ec.publicKey.export({ format: 'jwk' }), kid: 'k-ec', use: 'sig', alg: 'ES256' },
    { kty: 'oct', kid: 'k-oct', k: 'c2VjcmV0' }, // a symmetric key in a JWKS must be ignored
  ],
};

let control = { mode: 'valid', delay_ms: {} };
const stats = { discovery: 0, jwks: 0, token: 0, me: 0, authorize: 0 };
const codes = new Map(); // code -> {nonce, challenge, redirect_uri}
const tokens = new Map(); // access token -> claims

const b64 = (o) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function idToken(nonce) {
  const m = control.mode;
  const claims = {
    iss: m === 'wrong_iss' ? 'http://evil.example' : issuer,
    sub: control.sub || 'fake-user',
    aud: m === 'wrong_aud' ? 'another-client' : m === 'aud_array' ? ['other', CLIENT_ID] : CLIENT_ID,
    nonce: m === 'wrong_nonce' ? 'not-the-nonce' : nonce,
    iat: m === 'expired' ? now() - 7200 : m === 'iat_future' ? now() + 3600 : now(),
    exp: m === 'expired' ? now() - 3600 : now() + 300,
    email: control.email ?? 'fake-user@example.test',
    email_verified: control.email_verified ?? true,
    name: control.name ?? 'Fake User',
  };
  if (m === 'aud_array') claims.azp = CLIENT_ID;
  if (m === 'wrong_azp') claims.azp = 'another-client';
  if (m === 'no_email') {
    delete claims.email;
    delete claims.email_verified;
    delete claims.name;
  }
  const rs = (h) => {
    const input = `${b64(h)}.${b64(claims)}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(h.kid === 'k-unknown' ? rsaOther.privateKey : rsa.privateKey).toString('base64url')}`;
  };
  switch (m) {
    case 'alg_none':
      return `${b64({ alg: 'none', kid: 'k-rsa' })}.${b64(claims)}.`;
    case 'hs256_confusion': { // HMAC keyed with the RSA public key, under the RSA key's kid
      const input = `${b64({ alg: 'HS256', kid: 'k-rsa' })}.${b64(claims)}`;
      return `${input}.${createHmac('sha256', rsaPem).update(input).digest('base64url')}`;
    }
    case 'rs256_lowercase':
      return rs({ alg: 'rs256', kid: 'k-rsa' });
    case 'unknown_kid':
      return rs({ alg: 'RS256', kid: 'k-unknown' });
    case 'rs256_with_ec_kid':
      return rs({ alg: 'RS256', kid: 'k-ec' });
    case 'bad_signature': {
      const t = rs({ alg: 'RS256', kid: 'k-rsa' }).split('.');
      return `${t[0]}.${b64({ ...claims, sub: 'someone-else' })}.${t[2]}`;
    }
    case 'es256': {
      const input = `${b64({ alg: 'ES256', kid: 'k-ec' })}.${b64(claims)}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    }
    default:
      return rs({ alg: 'RS256', kid: 'k-rsa', typ: 'JWT' });
  }
}

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function later(what, fn) {
  const ms = (control.delay_ms || {})[what] || 0;
  if (ms > 0) setTimeout(fn, ms); else fn();
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data));
  });
}

createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  const body = await readBody(req);
  if (url.pathname === '/control' && req.method === 'POST') {
    control = { delay_ms: {}, ...JSON.parse(body || '{}') };
    return send(res, 200, { ok: true });
  }
  if (url.pathname === '/stats') return send(res, 200, stats);
  if (url.pathname === '/.well-known/openid-configuration') {
    stats.discovery++;
    return later('discovery', () => send(res, 200, {
      issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`, userinfo_endpoint: `${issuer}/me`, response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_post'],
    }));
  }
  if (url.pathname === '/jwks') {
    stats.jwks++;
    return later('jwks', () => send(res, 200, jwks));
  }
  if (url.pathname === '/authorize') {
    stats.authorize++;
    const q = url.searchParams;
    if (q.get('client_id') !== CLIENT_ID) return send(res, 400, { error: 'invalid_client' });
    if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) return send(res, 400, { error: 'invalid_request', error_description: 'PKCE S256 required' });
    const code = randomBytes(16).toString('hex');
    codes.set(code, { nonce: q.get('nonce'), challenge: q.get('code_challenge'), redirect_uri: q.get('redirect_uri') });
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state'));
    back.searchParams.set('iss', control.mode === 'wrong_iss_param' ? 'http://evil.example' : issuer);
    res.writeHead(302, { location: back.toString(), 'content-length': 0 });
    return res.end();
  }
  if (url.pathname === '/token' && req.method === 'POST') {
    stats.token++;
    const f = new URLSearchParams(body);
    return later('token', () => {
      if (f.get('client_id') !== CLIENT_ID || f.get('client_secret') !== CLIENT_SECRET) return send(res, 401, { error: 'invalid_client' });
      const c = codes.get(f.get('code'));
      codes.delete(f.get('code'));
      if (!c || c.redirect_uri !== f.get('redirect_uri')) return send(res, 400, { error: 'invalid_grant', error_description: 'unknown or used code' });
      const challenge = createHash('sha256').update(f.get('code_verifier') || '').digest('base64url');
      if (challenge !== c.challenge) return send(res, 400, { error: 'invalid_grant', error_description: 'PKCE verifier does not match' });
      if (control.mode === 'token_error') return send(res, 500, 'upstream exploded');
      const at = randomBytes(16).toString('hex');
      tokens.set(at, true);
      const out = { access_token: at, token_type: 'Bearer', expires_in: 3600 };
      if (control.mode !== 'no_id_token') out.id_token = idToken(c.nonce);
      return send(res, 200, out);
    });
  }
  if (url.pathname === '/me') {
    stats.me++;
    const at = (req.headers.authorization || '').replace(/^Bearer /, '');
    return later('me', () => {
      if (!tokens.has(at)) return send(res, 401, { error: 'invalid_token' });
      return send(res, 200, control.userinfo || { sub: control.sub || 'fake-user', email: 'fake-user@example.test', name: 'Fake User' });
    });
  }
  send(res, 404, { error: 'not found' });
}).listen(port, host, () => console.log(`listening ${issuer}`));
