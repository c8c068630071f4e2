// A real OpenID provider (the npm package `oidc-provider`) for the SSO tests, on loopback only.
//
//   node tests/accounts/sso/provider.js CONFIG.json
//
// CONFIG.json: {"host": "127.0.0.2", "port": 0, "client": {"client_id", "client_secret",
// "redirect_uris": [...], "post_logout_redirect_uris": [...]}, "users": {"LOGIN": {"sub": "...",
// "email": "...", "email_verified": true, "groups": [...], ...}}}
// The users are read again on every lookup, so a test changes someone's claims by rewriting the
// file. The first line on stdout is `READY <issuer>`. Pages are plain HTML without outside
// resources (the package's built-in pages load web fonts from the internet).
import { generateKeyPair, exportJWK } from 'jose';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const configPath = process.argv[2];
const load = () => JSON.parse(readFileSync(configPath, 'utf8'));
const config = load();
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>${escape(title)}</title></head><body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

function start(port) {
  const server = createServer();
  server.listen(port, config.host || '127.0.0.2', () => {
    const issuer = `http://${config.host || '127.0.0.2'}:${server.address().port}`;
    const provider = new Provider(issuer, configuration());
    const handle = provider.callback();
    server.on('request', (req, res) => {
      if (req.url.startsWith('/interaction/')) {
        interaction(provider, req, res).catch((error) => {
          res.statusCode = 500;
          res.end(page('Interaction failed', `<p>${escape(error.message)}</p>`));
        });
      } else {
        handle(req, res);
      }
    });
    process.stdout.write(`READY ${issuer}\n`);
  });
}

function configuration() {
  return {
    clients: [
      {
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_post',
        id_token_signed_response_alg: 'RS256',
        ...config.client,
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: ['rigwarden-sso-tests'] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups', 'realm_access'],
    },
    pkce: { required: () => true },
    ttl: { IdToken: config.id_token_ttl || 3600, Session: 3600, Grant: 3600, Interaction: 600 },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page(
            'Sign out of the provider?',
            `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`,
          );
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.body = page('Signed out of the provider', '');
        },
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Provider error', `<pre>${escape(JSON.stringify(out))}</pre>`);
    },
    findAccount: async (ctx, id) => {
      const found = Object.entries(load().users).find(([login, user]) => (user.sub || login) === id);
      if (!found) return undefined;
      return { accountId: id, claims: async () => ({ ...found[1], sub: id }) };
    },
    // First-party test client: consent is implied, the grant covers what was asked for.
    loadExistingGrant: async (ctx) => {
      const known = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      const grant = (known && (await ctx.oidc.provider.Grant.find(known))) || new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.params.scope || 'openid');
      await grant.save();
      return grant;
    },
  };
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(page('Sign in to the test provider', `<form method="post" action="/interaction/${escape(details.uid)}">
<label>Username <input name="login" autocomplete="off" autofocus required></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Continue</button></form>`));
    return;
  }
  const form = await readForm(req);
  const login = form.get('login') || '';
  const user = load().users[login];
  if (!user) {
    res.statusCode = 401;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(page('Unknown user', `<p>No user ${escape(login)} at the provider.</p>`));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: user.sub || login } }, { mergeWithLastSubmission: false });
}

start(config.port || 0);
