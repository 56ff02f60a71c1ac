# 60-hostile-input.t -- the hostile-input suite, application layer: tokens, JSON bodies, pipeline YAML,
# query strings, CORS and the access log. Each refused case asserts the status, the envelope, that the
# server still answers and that nothing stored changed (t/lib/CxHostile.pm); each accepted one what was
# stored. The cases are this project's own.
use v5.36;
use Test::More;
use Time::HiRes qw(time);
use CxTest qw(:DEFAULT jwt_hs256);
use CxHostile;

my $s = CxTest->new(config => { 'server.max_body_size' => '2MiB' },
    yaml => "cors:\n  allowed_origins: [\"https://ui.example\", \"*\"]\n");
$s->start;
my $admin = $s->admin_token;
my $P = '/api/v1/pipelines';
my $J = JSON::PP->new->canonical;

# one pipeline to read and to update
my $r = $s->auth_post($P, { name => 'h60', config_yaml => "a: 1\n" });
is($r->{status}, 201, 'a pipeline to work on');
my $id = $r->{json}{data}{id};
my $snap = CxHostile::snapshot($s);

# ---- tokens ----
my %claims = (sub => 'x', role => 'admin', jti => 'j-60', iss => 'conduix-cp', iat => int(time), exp => int(time) + 3600);
my @tokens = (
    ['no token', undef, 'UNAUTHORIZED'],
    ['an empty Bearer', '', 'UNAUTHORIZED'],
    ['garbage', 'zzz', 'UNAUTHORIZED'],
    ['three empty parts', '..', 'UNAUTHORIZED'],
    ['a 20 KB token', 'a' x 20000, 'UNAUTHORIZED'],
    ['alg none', jwt_hs256($s->secret, {%claims}, { alg => 'none', typ => 'JWT' }), 'UNAUTHORIZED'],
    ['alg HS512 header', jwt_hs256($s->secret, {%claims}, { alg => 'HS512', typ => 'JWT' }), 'UNAUTHORIZED'],
    ['lowercase hs256', jwt_hs256($s->secret, {%claims}, { alg => 'hs256', typ => 'JWT' }), 'UNAUTHORIZED'],
    ['another secret', jwt_hs256('x' x 40, {%claims}), 'UNAUTHORIZED'],
    ['expired', jwt_hs256($s->secret, { %claims, exp => int(time) - 10 }), 'TOKEN_EXPIRED'],
    ['exp as a string', jwt_hs256($s->secret, { %claims, exp => 'tomorrow' }), 'UNAUTHORIZED'],
    ['exp 1e300', jwt_hs256($s->secret, { %claims, exp => 1e300 }), 'UNAUTHORIZED'],
    ['no jti', jwt_hs256($s->secret, { %claims, jti => undef }), 'UNAUTHORIZED'],
    ['role root', jwt_hs256($s->secret, { %claims, role => 'root' }), 'UNAUTHORIZED'],
    ['sub of 300 bytes', jwt_hs256($s->secret, { %claims, sub => 's' x 300 }), 'UNAUTHORIZED'],
    ['another issuer', jwt_hs256($s->secret, { %claims, iss => 'evil' }), 'UNAUTHORIZED'],
    ['nbf in a year', jwt_hs256($s->secret, { %claims, nbf => int(time) + 365 * 86400 }), 'UNAUTHORIZED'],
    ['crit header', jwt_hs256($s->secret, {%claims}, { alg => 'HS256', typ => 'JWT', crit => ['exp'] }), 'UNAUTHORIZED'],
);
for my $t (@tokens) {
    my ($what, $tok, $code) = @$t;
    my $c = { %claims };
    my $x = defined $tok ? $s->get("$P/$id", Authorization => "Bearer $tok") : $s->get("$P/$id");
    CxHostile::refused($s, $x, 401, $code, "token: $what", $snap);
}
CxHostile::refused($s, $s->get("$P/$id", Authorization => "Basic YWRtaW46YWRtaW4="), 401, 'UNAUTHORIZED',
    'token: Basic credentials', $snap);
CxHostile::refused($s, $s->get("$P/$id", Cookie => 'cx_session=not.a.jwt'), 401, 'UNAUTHORIZED', 'token: a forged session cookie',
    $snap);
is($s->get("$P/$id", Authorization => "bearer $admin")->{status}, 200, 'token: "bearer" in lower case is the same scheme');

# A sub with a quote and a line break (conduix-cp token mints it: it is signed) is one escaped log field.
{
    my $odd = $s->token(role => 'viewer', sub => qq(a"b\nc\\d));
    my $x = $s->get("$P/$id", token => $odd, 'X-Request-ID' => 't60-odd-sub');
    is($x->{status}, 200, 'a signed token whose sub has " and \n is accepted');
    my $line;
    wait_ok { ($line) = grep { ($_->{request_id} // '') eq 't60-odd-sub' } $s->log_lines; $line } 10,
        'its access-log line parses as JSON';
    is($line->{user}, qq(a"b\nc\\d), 'the user field is the sub, escaped, no key added') if $line;
    ok($line && !exists $line->{b}, 'no forged key');
    my $bytes = jwt_hs256($s->secret, { %claims, role => 'viewer', sub => "\xff\xfe<\x01>" });
    $x = $s->get("$P/$id", token => $bytes, 'X-Request-ID' => 't60-bytes-sub');
    wait_ok { grep { ($_->{request_id} // '') eq 't60-bytes-sub' } $s->log_lines } 10,
        'a sub with bytes that are not UTF-8: the line is still JSON';
    $snap = CxHostile::snapshot($s);    # conduix-cp token recorded a session
}

# ---- JSON bodies ----
my $auth = { token => $admin };
sub post_raw($path, $body, %h) { $s->request('POST', $path, token => $admin, body => $body, headers => {%h}) }
sub put_raw($path, $body) { $s->request('PUT', $path, token => $admin, body => $body) }
my @bodies = (
    ['duplicate key', '{"name":"dup","name":"dup2","config_yaml":"a: 1"}', 'INVALID_JSON', qr/duplicate key "name" at line 1, column 15/],
    ['duplicate key by escape', '{"name":"d","\u006eame":"e","config_yaml":"a: 1"}', 'INVALID_JSON', qr/duplicate key "name"/],
    ['duplicate nested key', '{"name":"n","config_yaml":"a: 1","x":{"k":1,"k":2}}', 'INVALID_JSON', qr/duplicate key "k"/],
    ['a key with NUL', '{"name\u0000x":"n","config_yaml":"a: 1"}', 'INVALID_JSON', qr/NUL/],
    ['not UTF-8', qq({"name":"\xff\xfe","config_yaml":"a: 1"}), 'VALIDATION_ERROR', qr/^name: is not valid UTF-8 text \(line 1, column 10\)/],
    ['NaN', '{"name":"n","config_yaml":"a: 1","version":NaN}', 'INVALID_JSON', qr/NaN/],
    ['single quotes', q({'name':'n','config_yaml':'a: 1'}), 'INVALID_JSON', qr/double quotes|line 1, column 9/],
    ['trailing garbage', '{"name":"n","config_yaml":"a: 1"} {}', 'INVALID_JSON', qr/line 1, column 35/],
    ['100 levels deep', ('[' x 100) . (']' x 100), 'INVALID_JSON', qr/nesting|depth/],
    ['half a million [', '[' x 500000, 'INVALID_JSON', qr/line 1/],
    ['a bare string', '"name"', 'VALIDATION_ERROR', qr/body/],
    ['name with a NO-BREAK SPACE at the end', qq({"name":"h60b\xc2\xa0","config_yaml":"a: 1"}), 'VALIDATION_ERROR', qr/name: must not begin or end with white space/],
    ['name with an ideographic space first', qq({"name":"\xe3\x80\x80h60b","config_yaml":"a: 1"}), 'VALIDATION_ERROR', qr/white space/],
    ['name with a zero-width space', '{"name":"h60b\u200b","config_yaml":"a: 1"}', 'VALIDATION_ERROR', qr/white space/],
    ['name with a NUL', '{"name":"h\u0000b","config_yaml":"a: 1"}', 'VALIDATION_ERROR', qr/NUL/],
    ['name with a lone surrogate', '{"name":"\ud800","config_yaml":"a: 1"}', 'INVALID_JSON', qr/unpaired surrogate/],
    ['version 1e400', qq({"name":"v","config_yaml":"a: 1","version":1e400}), 'VALIDATION_ERROR', qr/version/],
    ['name as an object', '{"name":{"a":1},"config_yaml":"a: 1"}', 'VALIDATION_ERROR', qr/name: must be a string/],
);
for my $b (@bodies) {
    my ($what, $body, $code, $msg) = @$b;
    my $x = post_raw($P, $body);
    CxHostile::refused($s, $x, 400, $code, "JSON: $what", $snap);
    like($x->{json}{error} // '', $msg, "JSON: $what: the message says why") if $msg;
}
{
    my $many = '{' . join(',', map { qq("unknown_$_":1) } 1 .. 2000) . ',"name":"m","config_yaml":"a: 1"}';
    my $x = CxHostile::refused($s, post_raw($P, $many), 400, 'VALIDATION_ERROR', 'JSON: 2000 unknown fields', $snap);
    my $d = $x->{json}{details} // {};
    cmp_ok(scalar keys %$d, '<=', 17, 'details: at most 16 fields and the marker');
    like($d->{_truncated} // '', qr/^\d+ more field\(s\) not shown$/, 'details: how many were left out');
    cmp_ok(length $x->{content}, '<', length($many) / 4, 'the error is much smaller than the request');
    my $long = '{"' . ('k' x 100000) . '":1}';
    $x = CxHostile::refused($s, post_raw($P, $long), 400, 'VALIDATION_ERROR', 'JSON: a 100 KB key', $snap);
    cmp_ok(length $x->{content}, '<', 2000, 'the answer does not echo the key');
    my ($k) = keys %{ $x->{json}{details} // {} };
    cmp_ok(length($k // ''), '<=', 64, 'details names it in at most 64 bytes');
}
CxHostile::refused($s, post_raw($P, '{"name":"x","config_yaml":"a: 1"}', 'Content-Type' => 'text/yaml'), 415,
    'UNSUPPORTED_MEDIA_TYPE', 'JSON: another content type', $snap);
CxHostile::refused($s, post_raw('/api/v1/auth/login', '{"provider":"x","provider":"y"}'), 400, 'INVALID_JSON',
    'JSON: duplicate key in the login body', $snap);
CxHostile::refused($s, $s->request('PUT', '/api/v1/users/nobody', token => $admin, body => '{"role":"admin","role":"viewer"}'),
    400, 'INVALID_JSON', 'JSON: duplicate role in a users PUT', $snap);
CxHostile::refused($s, put_raw("$P/$id", '{"config_yaml":"b: 2","config_yaml":"c: 3"}'), 400, 'INVALID_JSON',
    'JSON: duplicate key in an update', $snap);
is($s->auth_get("$P/$id")->{json}{data}{config_yaml}, "a: 1\n", 'the pipeline is as it was');

# ---- pipeline YAML ----
my @yaml = (
    ['an alias to no anchor', "a: *nowhere\n", qr/alias \*nowhere refers to no anchor/],
    ['a tab for indentation', "a:\n\tb: 1\n", qr/line 2, column 1/],
    ['an unclosed quote', "a: \"open\n", qr/invalid YAML/],
    ['a mapping in a scalar', "a: b: c\n", qr/line 1, column 5/],
    ['only a comment', "# nothing\n", qr/must not be empty/],
    ['1 MiB and a byte', 'a: ' . ('x' x (1024 * 1024 - 2)) . "\n", qr/at most 1048576 bytes/],
    ['an anchor of another document', "a: &x 1\n---\nb: *x\n", qr/refers to no anchor/],
    # 500,000 levels in 1 MiB would cost a worker minutes in libyaml's scanner: refused at the 1001st
    ['1001 nested sequences', ('[' x 1001) . (']' x 1001), qr/^invalid YAML at line 1, column 1001: nested deeper than 1000 levels$/],
    ['500,000 nested sequences', ('[' x 500000) . (']' x 500000), qr/nested deeper than 1000 levels/],
    ['1001 nested block sequences', ('- ' x 1001) . "x\n", qr/nested deeper than 1000 levels/],
);
for my $y (@yaml) {
    my ($what, $text, $msg) = @$y;
    my $x = CxHostile::refused($s, $s->auth_post($P, { name => 'y60', config_yaml => $text }), 400, 'VALIDATION_ERROR',
        "YAML: $what", $snap);
    like($x->{json}{details}{config_yaml} // '', $msg, "YAML: $what: the message says where");
}
{
    my $laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
    $laughs .= sprintf("%s: &%s [%s]\n", $_, $_, join(',', ("*" . chr(ord($_) - 1)) x 9)) for 'b' .. 'j';
    my $t0 = time;
    my $x = $s->auth_post($P, { name => 'laughs', config_yaml => $laughs });
    is($x->{status}, 201, 'YAML: a billion laughs is valid YAML, stored as it is');
    cmp_ok(time - $t0, '<', 5 * $CxTest::SCALE, 'and checked without expanding it');
    is($s->auth_get("$P/$x->{json}{data}{id}")->{json}{data}{config_yaml}, $laughs, 'stored byte for byte');
    $s->auth_delete("$P/$x->{json}{data}{id}");
    $x = $s->auth_post($P, { name => 'deep', config_yaml => ('[' x 1000) . (']' x 1000) });
    is($x->{status}, 201, 'YAML: 1000 nested sequences are valid') or diag $x->{content};
    $s->auth_delete("$P/$x->{json}{data}{id}");
    $snap = CxHostile::snapshot($s);
}

# ---- query strings ----
my @queries = (
    ['page=%201', 'page'], ['page=+1', 'page'], ['page=1%20', 'page'], ['page=01', 'page'], ['page=-1', 'page'],
    ['page=1e3', 'page'], ['page=99999999999999999999', 'page'], ['page=', 'page'], ['page_size=0', 'page_size'],
    ['page_size=101', 'page_size'], ['page_size=%0910', 'page_size'], ['search=a%00b', 'search'], ['search=%00', 'search'],
    ['search=%ff%fe', 'search'], ['search=' . ('s' x 256), 'search'], ['sort=name%3BDROP', 'sort'], ['order=sideways', 'order'],
    ['x%00y=1', 'x'],
);
for my $q (@queries) {
    my ($query, $field) = @$q;
    my $x = CxHostile::refused($s, $s->auth_get("$P?$query"), 400, 'VALIDATION_ERROR', "query: ?$query", $snap);
    ok(exists $x->{json}{details}{$field}, "query: ?$query names $field") or diag explain $x->{json};
}
CxHostile::refused($s, $s->auth_get("/api/v1/agents?page=%201"), 400, 'VALIDATION_ERROR', 'query: agents ?page=%201', $snap);
is($s->auth_get("$P?search=h6&page=1&page_size=100")->{json}{data}{total}, 1, 'query: a good search still finds');
CxHostile::refused($s, $s->auth_get("$P/$id/history?limit=%2010"), 400, 'VALIDATION_ERROR', 'query: history ?limit=%2010', $snap)
    if $s->auth_get("$P/$id/history?limit=5")->{status} == 200;

# ---- CORS ----
{
    my $x = $s->get("$P/$id", token => $admin, Origin => 'https://evil.example');
    is($x->{headers}{'access-control-allow-origin'}, '*', 'CORS "*": another origin gets *');
    ok(!exists $x->{headers}{'access-control-allow-credentials'}, 'CORS "*": and never credentials');
    $x = $s->request('OPTIONS', "$P/$id", headers => { Origin => 'https://evil.example', 'Access-Control-Request-Method' => 'PUT' });
    is($x->{status}, 204, 'CORS "*": a preflight from another origin is 204');
    is($x->{headers}{'access-control-allow-origin'}, '*', 'CORS "*": with *');
    ok(!exists $x->{headers}{'access-control-allow-credentials'}, 'CORS "*": without credentials');
    $x = $s->get("$P/$id", token => $admin, Origin => 'https://ui.example');
    is($x->{headers}{'access-control-allow-origin'}, 'https://ui.example', 'CORS: a listed origin gets itself');
    is($x->{headers}{'access-control-allow-credentials'}, 'true', 'CORS: and credentials');
    like($x->{headers}{vary} // '', qr/Origin/, 'CORS: Vary: Origin');
}

# ---- the access log ----
{
    my $x = $s->get('/api/v1/auth/callback/nope?code=SECRETCODE123&state=SECRETSTATE456&x=1', 'X-Request-ID' => 't60-cb');
    ok($x->{status} >= 400, 'a callback for no provider is refused');
    my $line;
    wait_ok { ($line) = grep { ($_->{request_id} // '') eq 't60-cb' } $s->log_lines; $line } 10, 'the callback is logged';
    is($line->{path}, '/api/v1/auth/callback/nope?code=REDACTED&state=REDACTED&x=REDACTED', 'log: sign-in query values redacted')
        if $line;
    unlike($s->log, qr/SECRETCODE123|SECRETSTATE456/, 'log: the code and state are nowhere in the log');
    $s->get("$P?search=x&token=SECRETTOKEN789&page=1", token => $admin, 'X-Request-ID' => 't60-tok');
    wait_ok { ($line) = grep { ($_->{request_id} // '') eq 't60-tok' } $s->log_lines; $line } 10, 'a list with a token parameter';
    is($line->{path}, "$P?search=x&token=REDACTED&page=1", 'log: a secret parameter redacted, the others kept') if $line;
    my $c = $s->conn;
    $c->send_raw("GET /x%0A\"\xff\xfe\x80/\"}{ HTTP/1.1\r\nHost: x\r\nX-Request-ID: t60-raw\r\n\r\n");
    my $y = $c->read_response(timeout => 10);
    is($y->{status}, 404, 'a path with bytes that are not UTF-8 and quotes: 404');
    wait_ok { ($line) = grep { ($_->{request_id} // '') eq 't60-raw' } $s->log_lines; $line } 10, 'and logged as JSON';
    is($line->{path}, "/x%0A\"\\xff\\xfe\\x80/\"}{", 'log: quotes escaped, each byte that is not UTF-8 as \\xNN') if $line;
}
CxHostile::log_is_json($s, 'every line of the server log is one JSON object');
is(CxHostile::snapshot($s), $snap, 'nothing stored by any refused request');
is($s->stop, 0, 'clean stop');
done_testing;
