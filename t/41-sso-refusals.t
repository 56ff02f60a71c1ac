# 41-sso-refusals.t -- what the callback refuses in an ID token, with a scripted provider (fakeop.mjs) that
# signs whatever it is told: alg none, HS256 keyed with the RSA public key (alg confusion), "rs256",
# RS256 under the EC key's kid, a bad signature, an unknown kid (the JWKS is fetched again, at most every
# 10 s), wrong iss, aud, azp or nonce, expired, issued in the future. And what it accepts: RS256, ES256, an
# aud array with azp; claims the ID token lacks from userinfo. Provider failures are 502 naming the
# provider: a token endpoint error, no id_token, a dead provider, a slow one (provider_timeout).
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use CxIdp;
use JSON::PP;

my $fake = CxIdp->fake;
my $s = CxTest->new(workers => 1);
my $base = $s->base_url;
my $dead = CxIdp::free_port_on('127.0.0.2');
$s->set_config(
    'auth.oidc' => [
        $fake->provider('fake', $base),
        { provider => 'dead', issuer_url => "http://127.0.0.2:$dead", client_id => 'x', redirect_url => "$base/api/v1/auth/callback/dead" },
        $fake->provider('legacy', $base, redirect_url => "$base/api/v1/auth/callback"),
    ],
    'auth.admin_emails' => ['boss@example.test']);
$s->write_config;
$s->start;

sub count($t) { $s->sql("SELECT COUNT(*) AS n FROM $t")->[0]{n} }

# login -- the whole sign-in with the fake (it redirects back at once, no pages); the callback's answer.
sub login($server = $s, $provider = 'fake') {
    my $jar = CxIdp::Jar->new;
    my $b = $server->base_url;
    my $r = CxIdp::http($jar, 'GET', "$b/api/v1/auth/login/$provider");
    return { status => $r->{status}, json => eval { decode_json($r->{content}) }, headers => $r->{headers} }
        unless $r->{status} == 302;
    my $a = CxIdp::http($jar, 'GET', $r->{headers}{location});
    die "fake /authorize: $a->{status} $a->{content}" unless $a->{status} == 302;
    my $c = CxIdp::http($jar, 'GET', $a->{headers}{location});
    return { status => $c->{status}, json => eval { decode_json($c->{content}) }, headers => $c->{headers} };
}

# ---- accepted ---------------------------------------------------------------------------------------
$fake->control(mode => 'valid');
my $r = login();
is($r->{status}, 200, 'RS256 ID token: signed in') or diag explain $r->{json};
is($r->{json}{data}{user}{email}, 'fake-user@example.test', 'claims from the ID token');
is($fake->stats->{jwks}, 1, 'the JWKS was fetched once');
is($fake->stats->{discovery}, 1, 'the discovery document once');
my $r2 = login();
is($r2->{status}, 200, 'a second sign-in');
is($fake->stats->{jwks}, 1, 'uses the cached JWKS');
is($fake->stats->{discovery}, 1, 'and the cached discovery document');
is($r2->{json}{data}{user}{id}, $r->{json}{data}{user}{id}, 'the same user');

$r = login($s, 'legacy');
is($r->{status}, 200, "the original server's callback URL (/auth/callback, no provider): the state names the provider")
    or diag explain $r->{json};
is($r->{json}{data}{user}{provider}, 'legacy', '  provider legacy');

$fake->control(mode => 'es256');
is(login()->{status}, 200, 'ES256 ID token (P-256 key of the JWKS): signed in');
$fake->control(mode => 'aud_array');
is(login()->{status}, 200, 'aud ["other", client_id] with azp = client_id: signed in');

$fake->control(mode => 'no_email');
my $before_me = $fake->stats->{me};
$r = login();
is($r->{status}, 200, 'an ID token without e-mail and name: signed in');
is($fake->stats->{me}, $before_me + 1, 'the missing claims were fetched from userinfo');
is($r->{json}{data}{user}{email}, 'fake-user@example.test', 'e-mail from userinfo');
is($r->{json}{data}{user}{name}, 'Fake User', 'name from userinfo');

$fake->control(mode => 'valid', sub => 'boss', email => 'boss@example.test', email_verified => JSON::PP::false);
$r = login();
is($r->{status}, 200, 'an unverified e-mail signs in');
is($r->{json}{data}{user}{role}, 'viewer', 'but an unverified address never gets the role of auth.admin_emails');
$fake->control(mode => 'valid', sub => 'boss2', email => 'boss@example.test', email_verified => JSON::PP::true);
is(login()->{json}{data}{user}{role}, 'admin', 'the same address, verified: admin');

# ---- refused ID tokens ---------------------------------------------------------------------------------
my @refused = (
    [alg_none => qr/alg none refused/, 'alg none'],
    [hs256_confusion => qr/alg not RS256 or ES256/, 'HS256 HMAC-ed with the RSA public key (alg confusion)'],
    [rs256_lowercase => qr/alg not RS256 or ES256/, 'alg "rs256"'],
    [rs256_with_ec_kid => qr/alg does not match the key/, "RS256 under the EC key's kid (the key pins ES256)"],
    [bad_signature => qr/bad signature/, 'a payload that is not the one signed'],
    [wrong_iss => qr/iss is not the provider's issuer/, 'iss of another issuer'],
    [wrong_aud => qr/aud does not name this client/, 'aud of another client'],
    [wrong_azp => qr/azp is another client/, 'azp of another client'],
    [wrong_nonce => qr/nonce mismatch/, 'a nonce that is not this sign-in\'s'],
    [expired => qr/expired/, 'expired'],
    [iat_future => qr/iat in the future/, 'issued an hour from now'],
    [unknown_kid => qr/unknown kid/, 'a kid the JWKS does not have'],
);
my ($users, $sessions, $failed) = (count('users'), count('sessions'),
    $s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'login_failed'")->[0]{n});
for my $case (@refused) {
    my ($mode, $why, $name) = @$case;
    $fake->control(mode => $mode);
    $r = login();
    is($r->{status}, 401, "$name: 401") or diag explain $r->{json};
    is($r->{json}{code}, 'UNAUTHORIZED', "$name: UNAUTHORIZED");
    like($r->{json}{error} // '', $why, "$name: the answer says why");
}
is(count('users'), $users, 'no refused ID token made a user');
is(count('sessions'), $sessions, 'or issued a token');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'login_failed'")->[0]{n} - $failed, scalar(@refused),
    'every refusal is audited (login_failed)');
like($s->log, qr/sign-in failed \(401\): the ID token of identity provider fake is not valid: alg none refused/,
    'and logged');

# An unknown kid fetches the JWKS again, but not more often than every 10 s.
my $jwks = $fake->stats->{jwks};
$fake->control(mode => 'unknown_kid');
login();
is($fake->stats->{jwks}, $jwks, 'an unknown kid right after a fetch: the JWKS is not fetched again');
sleep 10.5;
login();
is($fake->stats->{jwks}, $jwks + 1, 'an unknown kid 10 s later: the JWKS is fetched again, once');
login();
is($fake->stats->{jwks}, $jwks + 1, 'and not again at once (rate-limited)');

# ---- the authorization response and the provider's failures ----------------------------------------
$fake->control(mode => 'wrong_iss_param');
$r = login();
is($r->{status}, 400, 'an iss parameter of another issuer (mix-up): 400');
ok(exists $r->{json}{details}{iss}, 'details name iss');

$fake->control(mode => 'token_error');
$r = login();
is($r->{status}, 502, 'the token endpoint answers 500: 502');
is($r->{json}{code}, 'PROVIDER_ERROR', 'PROVIDER_ERROR');
like($r->{json}{error} // '', qr/identity provider fake: token endpoint answered HTTP 500/, 'naming the provider and the call');

$fake->control(mode => 'no_id_token');
$r = login();
is($r->{status}, 502, 'no id_token from an OIDC provider: 502');
like($r->{json}{error} // '', qr/fake.*without an id_token/, 'says so');

$r = login($s, 'dead');
is($r->{status}, 502, 'a provider nobody answers for: 502 at the first step (discovery)');
like($r->{json}{error} // '', qr/identity provider dead: discovery: /, 'naming the provider and the step');
is($s->get('/health')->{status}, 200, 'the worker is fine');

# a slow token endpoint, with a short auth.provider_timeout
my $t = CxTest->new(workers => 1);
$t->set_config(
    'auth.oidc' => [{ provider => 'fake', issuer_url => $fake->url, client_id => 'fake-client', client_secret => 'fake-secret',
        redirect_url => $t->base_url . '/api/v1/auth/callback/fake' }],
    'auth.provider_timeout' => '1s');
$t->write_config;
$t->start;
$fake->control(mode => 'valid', delay_ms => { token => 4000 });
my $t0 = time;
$r = login($t);
my $took = time - $t0;
is($r->{status}, 502, 'a token endpoint slower than auth.provider_timeout: 502');
like($r->{json}{error} // '', qr/identity provider fake: token endpoint: no answer within 1000 ms/, 'says which and how long');
cmp_ok($took, '<', 3.5 * $CxTest::SCALE, 'answered when the timeout passed, not when the provider did');
$fake->control(mode => 'valid');

is($t->stop, 0, 'stop (second instance)');
is($s->stop, 0, 'stop exits 0');
done_testing;
