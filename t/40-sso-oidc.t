# 40-sso-oidc.t -- sign-in with a real OpenID provider (oidc-provider on 127.0.0.2), without a browser: the
# redirect and its state cookie, the callback (code exchange with PKCE, RS256 ID token from the JWKS),
# provisioning, our token, and every refusal of the callback: missing or foreign cookie, replayed or
# expired state, a code used twice, the provider's error; a sign-in begun on one instance and finished on
# another; the frontend redirect and the session cookie.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use CxIdp;

my $s = CxTest->new(workers => 2);
my $base = $s->base_url;
my $cb = "$base/api/v1/auth/callback/test";
my $idp = CxIdp->idp(redirects => [$cb]);
my $iss = $idp->url;
$s->set_config(
    'auth.oidc' => [{ provider => 'test', name => 'Test IdP', issuer_url => $iss, client_id => 'test-client',
        client_secret => 'test-secret', redirect_url => $cb }],
    'auth.admin_emails' => ['alice@example.test'],
    'auth.default_role' => 'viewer');
$s->write_config;
$s->start;

sub users_count { $s->sql('SELECT COUNT(*) AS n FROM users')->[0]{n} }
sub sessions_count { $s->sql('SELECT COUNT(*) AS n FROM sessions')->[0]{n} }
sub callback($url, $jar, %h) {
    my $r = CxIdp::http($jar, 'GET', $url, %h);
    $r->{json} = eval { JSON::PP->new->decode($r->{content}) };
    return $r;
}
sub uri_unescape($v) {
    $v =~ tr/+/ /;
    $v =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $v;
}
sub query_of($url) {
    my ($q) = $url =~ /\?(.*)$/;
    return { map { my ($k, $v) = split /=/, $_, 2; ($k => uri_unescape($v // '')) } split /&/, $q // '' };
}

# ---- providers --------------------------------------------------------------------------------------
my $r = $s->get('/api/v1/auth/providers');
is($r->{status}, 200, 'GET /auth/providers: 200 without a token');
is_deeply($r->{json}{data}, [{ id => 'test', name => 'Test IdP', type => 'oidc', enabled => JSON::PP::true }],
    'providers: id, name, type, enabled') or diag explain $r->{json};

is($s->get('/api/v1/auth/login/nope')->{status}, 404, 'GET /auth/login/<unknown provider>: 404');

# ---- the redirect -----------------------------------------------------------------------------------
my $jar = CxIdp::Jar->new;
$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/test");
is($r->{status}, 302, 'GET /auth/login/test: 302');
my $loc = $r->{headers}{location} // '';
like($loc, qr{^\Q$iss\E/auth\?}, 'to the discovered authorization_endpoint');
my $q = query_of($loc);
is($q->{response_type}, 'code', 'response_type=code');
is($q->{client_id}, 'test-client', 'client_id');
is($q->{redirect_uri}, $cb, 'redirect_uri is the configured one');
like($q->{scope}, qr/\bopenid\b/, 'scope has openid');
is($q->{code_challenge_method}, 'S256', 'PKCE S256');
like($q->{code_challenge}, qr/^[A-Za-z0-9_-]{43}$/, 'a S256 challenge (43 base64url characters)');
like($q->{state}, qr/^[A-Za-z0-9_-]{43}$/, 'a random state');
like($q->{nonce}, qr/^[A-Za-z0-9_-]{43}$/, 'a nonce');
my $sc = $r->{headers}{'set-cookie'};
$sc = join("\n", @$sc) if ref $sc;
like($sc, qr/cx_sso_state=\Q$q->{state}\E;/, 'the state cookie holds the state');
like($sc, qr/HttpOnly/, 'state cookie HttpOnly');
like($sc, qr/SameSite=Lax/, 'state cookie SameSite=Lax');
like($sc, qr{Path=/api/v1/auth}, 'state cookie path /api/v1/auth');
like($sc, qr/Max-Age=600/, 'state cookie lives 10 minutes');
is($r->{headers}{'referrer-policy'}, 'no-referrer', 'Referrer-Policy: no-referrer');
is($s->sql('SELECT COUNT(*) AS n FROM auth_states WHERE state = ?', $q->{state})->[0]{n}, 1,
    'the state is stored in MySQL (any worker, any instance can finish)');

# ---- a whole sign-in --------------------------------------------------------------------------------
my $f = CxIdp::signin("$base/api/v1/auth/login/test", login => 'alice', callback => $cb);
like($f->{callback}, qr/[?&]code=/, 'the provider sends the browser back with a code');
like($f->{callback}, qr/[?&]iss=/, 'and its iss (RFC 9207)');
$r = callback($f->{callback}, $f->{jar});
is($r->{status}, 200, 'callback: 200 (no frontend_url)') or diag $r->{content};
my $d = $r->{json}{data} // {};
ok($d->{token}, 'data.token');
like($d->{expires_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'data.expires_at');
is($d->{user}{email}, 'alice@example.test', 'user.email from the ID token');
is($d->{user}{name}, 'Test alice', 'user.name');
is($d->{user}{provider}, 'test', 'user.provider');
is($d->{user}{role}, 'admin', 'alice is in auth.admin_emails: admin on first login');
my $c = jwt_decode($d->{token})->{claims};
is($c->{sub}, $d->{user}{id}, 'token sub = user id');
is($c->{iss}, 'conduix-cp', 'token iss = auth.issuer');
is($c->{role}, 'admin', 'token role');
is($c->{email}, 'alice@example.test', 'token email');
is($c->{name}, 'Test alice', 'token name');
ok($c->{jti} && $c->{iat} && $c->{exp}, 'token jti, iat, exp');
ok(abs($c->{exp} - $c->{iat} - 86400) <= 1, 'lifetime auth.token_expiry (24h)');
is($r->{headers}{'referrer-policy'}, 'no-referrer', 'callback: Referrer-Policy: no-referrer');
$sc = $r->{headers}{'set-cookie'};
$sc = join("\n", @$sc) if ref $sc;
like($sc, qr/cx_sso_state=;.*Max-Age=0/, 'the state cookie is cleared');
like($sc, qr{cx_session=\Q$d->{token}\E; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax}, 'the session cookie is set');

my $row = $s->sql('SELECT * FROM users WHERE id = ?', $c->{sub})->[0];
is($row->{provider}, 'test', 'users.provider');
is($row->{provider_subject}, 'alice', 'users.provider_subject is the provider sub');
ok($row->{last_login_at}, 'users.last_login_at set');
my $sess = $s->sql('SELECT * FROM sessions WHERE jti = ?', $c->{jti})->[0];
ok($sess, 'the token is recorded in sessions');
is($sess->{user_id}, $c->{sub}, 'sessions.user_id');
is($sess->{provider}, 'test', 'sessions.provider');
is($sess->{user_agent}, 'cx-test-signin/1', 'sessions.user_agent');
is($sess->{ip_address}, '127.0.0.1', 'sessions.ip_address');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'login' AND target_id = ?", $c->{sub})->[0]{n}, 1,
    'the login is audited');

my $me = $s->get('/api/v1/auth/me', token => $d->{token});
is($me->{status}, 200, 'the token works on GET /auth/me');
is($me->{json}{data}{id}, $c->{sub}, '/auth/me: id');
is($me->{json}{data}{role}, 'admin', '/auth/me: role');
ok(exists $me->{json}{data}{last_login_at} && exists $me->{json}{data}{created_at}, '/auth/me: the User fields');
is($s->get('/api/v1/auth/me', Cookie => "cx_session=$d->{token}")->{status}, 200, 'the session cookie authenticates too');

# ---- refusals of the callback -----------------------------------------------------------------------
my ($n_users, $n_sessions) = (users_count(), sessions_count());
$r = callback($f->{callback}, $f->{jar});
is($r->{status}, 400, 'the same callback again from the same browser (its state cookie is gone): 400');
ok(exists $r->{json}{details}{cookie}, 'details name the cookie') or diag explain $r->{json};
$f->{jar}->set('127.0.0.1', 'cx_sso_state', query_of($f->{callback})->{state});
$r = callback($f->{callback}, $f->{jar});
is($r->{status}, 400, 'replayed with the state cookie put back: 400');
is($r->{json}{code}, 'VALIDATION_ERROR', 'replayed state: VALIDATION_ERROR');
like($r->{json}{details}{state} // '', qr/already used/, 'replayed state: details.state says it was used') or diag explain $r->{json};

my $f2 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'bob', callback => $cb);
my $st2 = query_of($f2->{callback})->{state};
my $nojar = CxIdp::Jar->new;
$r = callback($f2->{callback}, $nojar);
is($r->{status}, 400, 'callback without the state cookie: 400');
ok(exists $r->{json}{details}{cookie}, 'missing cookie: details name the cookie') or diag explain $r->{json};
my $other = CxIdp::Jar->new;
$other->set('127.0.0.1', 'cx_sso_state', 'A' x 43);
$r = callback($f2->{callback}, $other);
is($r->{status}, 400, "callback with another sign-in's cookie: 400");
ok(exists $r->{json}{details}{state}, 'foreign cookie: details name the state');
is($s->sql('SELECT COUNT(*) AS n FROM auth_states WHERE state = ?', $st2)->[0]{n}, 1,
    'a refused callback does not use up the state');
$r = callback($f2->{callback}, $f2->{jar});
is($r->{status}, 200, 'the right browser still finishes its sign-in') or diag $r->{content};
my $bob = $r->{json}{data};
is($bob->{user}{role}, 'viewer', 'bob is not listed: auth.default_role');
($n_users, $n_sessions) = (users_count(), sessions_count());

# a code used twice: bob's code again, with a new state of this browser
my $j3 = CxIdp::Jar->new;
$r = CxIdp::http($j3, 'GET', "$base/api/v1/auth/login/test");
my $st3 = query_of($r->{headers}{location})->{state};
my $code2 = query_of($f2->{callback})->{code};
$r = callback("$cb?code=$code2&state=$st3&iss=" . CxIdp::uri_escape($iss), $j3);
is($r->{status}, 401, 'a code used before (another sign-in, another verifier): 401');
like($r->{json}{error} // '', qr/invalid_grant/, 'the provider refused the code: invalid_grant');
is(users_count(), $n_users, 'no user made');
is(sessions_count(), $n_sessions, 'no token issued');

# the provider's own error
$r = CxIdp::http($j3, 'GET', "$base/api/v1/auth/login/test");
my $st4 = query_of($r->{headers}{location})->{state};
$r = callback("$cb?error=access_denied&error_description=End-User+aborted+interaction&state=$st4", $j3);
is($r->{status}, 401, 'error=access_denied from the provider: 401');
like($r->{json}{error} // '', qr/access_denied/, 'the answer names the provider error');
ok($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'login_failed'")->[0]{n} >= 4, 'failed logins are audited');

# an expired state
my $f5 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'carol', callback => $cb);
my $st5 = query_of($f5->{callback})->{state};
$s->sql('UPDATE auth_states SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE state = ?', $st5);
$r = callback($f5->{callback}, $f5->{jar});
is($r->{status}, 400, 'a state older than 10 minutes: 400');
like($r->{json}{error} // '', qr/10 minutes/, 'expired state: says so');
is($s->sql('SELECT COUNT(*) AS n FROM auth_states WHERE state = ?', $st5)->[0]{n}, 0, 'the expired state is deleted');

# a wrong iss in the authorization response (mix-up)
my $f6 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'dave', callback => $cb);
(my $mixed = $f6->{callback}) =~ s/iss=[^&]*/iss=http%3A%2F%2Fevil.example/;
$r = callback($mixed, $f6->{jar});
is($r->{status}, 400, 'an iss that is not the issuer: 400');
ok(exists $r->{json}{details}{iss}, 'wrong iss: details name iss');
is(users_count(), $n_users, 'none of these refusals made a user');
is(sessions_count(), $n_sessions, 'none of them issued a token');

# ---- second sign-in of the same person ---------------------------------------------------------------
sleep 0.01;
my $before = $s->sql('SELECT last_login_at FROM users WHERE id = ?', $c->{sub})->[0]{last_login_at};
my $f7 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'alice', callback => $cb);
$r = callback($f7->{callback}, $f7->{jar});
is($r->{status}, 200, 'alice signs in again');
is($r->{json}{data}{user}{id}, $c->{sub}, 'the same user (provider, subject)');
isnt($s->sql('SELECT last_login_at FROM users WHERE id = ?', $c->{sub})->[0]{last_login_at}, $before,
    'last_login_at updated');

# ---- a sign-in begun on one instance and finished on another (shared MySQL) --------------------------
my $s2 = CxTest->new(create_db => 0, workers => 1);
$s2->set_config('database.name' => $s->db_name, 'auth.jwt_secret' => $s->secret,
    'auth.oidc' => [{ provider => 'test', issuer_url => $iss, client_id => 'test-client', client_secret => 'test-secret',
        redirect_url => $cb }]);
$s2->write_config;
$s2->start;
my $f8 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'erin', callback => $cb);
(my $cb_on_2 = $f8->{callback}) =~ s{^\Q$base\E}{$s2->base_url}e;
$r = callback($cb_on_2, $f8->{jar});
is($r->{status}, 200, 'a sign-in started on instance 1 finishes on instance 2') or diag $r->{content};
is($r->{json}{data}{user}{email}, 'erin@example.test', 'as the right user');
my $erin = $r->{json}{data}{token};

# ---- logout: refused by every worker of every instance ---------------------------------------------
$r = $s->post('/api/v1/auth/logout', undef, token => $erin);
is($r->{status}, 200, 'POST /auth/logout: 200');
$sc = $r->{headers}{'set-cookie'} // '';
like($sc, qr/cx_session=;.*Max-Age=0/, 'logout clears the session cookie');
my $jti = jwt_decode($erin)->{claims}{jti};
ok($s->sql('SELECT revoked_at FROM sessions WHERE jti = ?', $jti)->[0]{revoked_at}, 'sessions.revoked_at set');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'logout' AND target_id = ?", $jti)->[0]{n}, 1,
    'the logout is audited');
# Fresh connections land on either worker; the harness's kept-alive connection stays on one, which may
# be the worker the fresh ones missed. All of them must refuse, in one round, and every refusal says why.
my @why;
wait_ok {
    @why = ();
    for (1 .. 8) {
        for my $inst ($s, $s2) {
            my $x = $inst->request('GET', '/api/v1/auth/me', token => $erin, ua => HTTP::Tiny->new(keep_alive => 0));
            return 0 unless $x->{status} == 401;
            push @why, $x->{json}{error} // '';
        }
    }
    my $x = $s->get('/api/v1/auth/me', token => $erin);
    return 0 unless $x->{status} == 401;
    push @why, $x->{json}{error} // '';
    1;
} 1.5, 'within a second the revoked token is refused on every worker of both instances';
is(scalar(grep { !/revoked/ } @why), 0, 'every refusal says the token was revoked') or diag explain \@why;
is($s->get('/api/v1/auth/me', token => $d->{token})->{status}, 200, "alice's token is not affected");

# ---- with a frontend: the browser goes to <frontend_url>/login?token= -------------------------------
$s->set_config('auth.frontend_url' => 'http://127.0.0.1:3999/');
$s->write_config;
$s->signal('HUP');
wait_ok {
    my $j = CxIdp::Jar->new;
    my $t = CxIdp::http($j, 'GET', "$base/api/v1/auth/login/test");
    $t->{status} == 302;
} 30, 'reloaded';
sleep 1; # the old generation finishes
my $f9 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'frank', callback => $cb);
$r = callback($f9->{callback}, $f9->{jar});
is($r->{status}, 302, 'callback with auth.frontend_url: 302');
like($r->{headers}{location} // '', qr{^http://127\.0\.0\.1:3999/login\?token=[\w-]+\.[\w-]+\.[\w-]+$},
    'to <frontend_url>/login?token=<jwt> (trailing slash of frontend_url dropped)');
is($r->{headers}{'referrer-policy'}, 'no-referrer', 'Referrer-Policy: no-referrer on the redirect');
my ($tok9) = ($r->{headers}{location} // '') =~ /token=(.*)$/;
is($s->get('/api/v1/auth/me', token => $tok9)->{json}{data}{email}, 'frank@example.test', 'that token works');
my $f10 = CxIdp::signin("$base/api/v1/auth/login/test", login => 'gina', callback => $cb);
$r = callback($f10->{callback} . '&redirect_uri=http%3A%2F%2Fevil.example%2F', $f10->{jar});
like($r->{headers}{location} // '', qr{^http://127\.0\.0\.1:3999/login\?token=}, 'a redirect_uri in the request is ignored');

is($s2->stop, 0, 'instance 2 stops');
is($s->stop, 0, 'stop exits 0');
done_testing;
