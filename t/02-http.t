# 02-http.t -- the HTTP core: 404/405 envelopes, X-Request-ID, body limits and types, JSON errors,
# keep-alive across errors, the access log, /metrics, and authentication on a protected route.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_hs256);

my $s = CxTest->new(config => { 'server.max_body_size' => '1KiB' });
$s->start;
my $admin = $s->admin_token;
my $PROTECTED = '/api/v1/pipelines';    # GET: viewer and up; POST: operator and up (JSON body)
my $ADMIN_ONLY = '/api/v1/pipelines/00000000-0000-4000-8000-000000000001';    # DELETE: admin

# envelope -- an error response in the envelope of spec/api.md with STATUS and CODE.
sub envelope($r, $status, $code, $what) {
    subtest "$what: $status $code envelope" => sub {
        is($r->{status}, $status, "status $status") or diag "$r->{status} $r->{content}";
        like($r->{headers}{'content-type'} // '', qr{^application/json}, 'JSON body');
        is(ref $r->{json}, 'HASH', 'body is a JSON object') or return;
        ok(JSON::PP::is_bool($r->{json}{success}) && !$r->{json}{success}, 'success is false');
        is($r->{json}{code}, $code, "code $code");
        ok(length($r->{json}{error} // '') > 0, 'error message present');
        ok(length($r->{json}{request_id} // '') > 0, 'request_id present');
        is($r->{json}{request_id}, $r->{request_id}, 'request_id equals the X-Request-ID header');
        is($r->{headers}{'content-length'}, length $r->{content}, 'Content-Length matches');
    };
}

# 404 and 405
envelope($s->get('/no/such/route'), 404, 'NOT_FOUND', 'GET /no/such/route');
envelope($s->get('/api/v1/no-such-resource'), 404, 'NOT_FOUND', 'GET /api/v1/no-such-resource');
my $r = $s->post('/health', '{}');
envelope($r, 405, 'METHOD_NOT_ALLOWED', 'POST /health');
like($r->{headers}{allow} // '', qr/\bGET\b/, '405 has Allow: GET') or diag explain $r->{headers};
$r = $s->request('PATCH', $PROTECTED, token => $admin);
is($r->{status}, 405, "PATCH $PROTECTED is 405");
like($r->{headers}{allow} // '', qr/\bGET\b/, "Allow for $PROTECTED lists GET") or diag explain $r->{headers};

# Server: one header, ours (reply.c adds it; h2o's own is off), on answers and on errors
for my $step (['GET', '/health', 200], ['GET', '/no/such/route', 404], ['POST', '/health', 405]) {
    my ($m, $p, $want) = @$step;
    $r = $s->request($m, $p, $m eq 'POST' ? (body => '{}') : ());
    is($r->{status}, $want, "$m $p: $want");
    is($r->{headers}{server}, 'conduix-cp', "$m $p: one Server header, conduix-cp") or diag explain $r->{headers};
}

# X-Request-ID
$r = $s->get('/health', 'X-Request-ID' => 't02-req.1_ABC');
is($r->{request_id}, 't02-req.1_ABC', 'a sane X-Request-ID is echoed');
$r = $s->get('/no/such/route', 'X-Request-ID' => 't02-req-404');
is($r->{request_id}, 't02-req-404', 'echoed on an error too');
is($r->{json}{request_id}, 't02-req-404', 'and in the error body');
my %seen;
for (1 .. 5) { $seen{ $s->get('/health')->{request_id} // '' }++ }
is(scalar(grep { length } keys %seen), 5, 'generated when absent, different each time') or diag explain \%seen;
for my $bad ('a' x 300, 'has spaces in it', "semi;colon<script>") {
    $r = $s->get('/health', 'X-Request-ID' => $bad);
    ok(length($r->{request_id} // '') > 0 && $r->{request_id} ne $bad && $r->{request_id} =~ /^\S{1,64}$/,
        'an insane X-Request-ID (' . substr($bad, 0, 20) . '...) is replaced by a generated one')
        or diag $r->{request_id};
}

# Body size cap: 413 in the envelope, before the body is read in full.
my $big = '{"name":"big","description":"' . ('x' x 2048) . '","config_yaml":"a: 1"}';
$r = $s->post($PROTECTED, $big);
ok($r->{status} == 413 || $r->{status} == 401, "unauthenticated 2 KiB POST: 413 or 401 (got $r->{status})");
envelope($s->post($PROTECTED, $big, token => $admin), 413, 'PAYLOAD_TOO_LARGE', '2 KiB POST with max_body_size 1KiB');
{
    my $c = $s->conn;
    $c->send_raw($c->request_text('POST', $PROTECTED, headers => { 'Content-Type' => 'application/json',
        'Content-Length' => 10 * 1024 * 1024, Authorization => "Bearer $admin" }) . ('x' x 4096));
    my $x = $c->read_response(timeout => 10);
    is($x->{status}, 413, 'Content-Length 10 MiB with 4 KiB sent: 413 without waiting for the rest')
        or diag explain $x;
}

# Other answers h2o gives by itself, before or without our handler, are the envelope too (a response
# filter rewrites them; the binary does not replace any of libh2o's functions, which a static link,
# -Bsymbolic or an h2o upgrade would silently undo).
{
    my $c = $s->conn;
    $c->send_raw("POST $PROTECTED HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $admin\r\n"
        . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n");
    envelope($c->read_response(timeout => 10), 400, 'BAD_REQUEST', 'a broken chunked body (h2o\'s 400)');
    $c = $s->conn;
    $c->send_raw("POST $PROTECTED HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n");
    envelope($c->read_response(timeout => 10), 400, 'BAD_REQUEST', 'a broken Content-Length (h2o\'s 400)');
    $c = $s->conn;
    envelope($c->request('POST', $PROTECTED, body => '{}', headers => { Expect => 'something-else',
        'Content-Type' => 'application/json' }), 417, 'EXPECTATION_FAILED', 'an unknown Expect (h2o\'s 417)');
    $c = $s->conn;
    my $x = $c->request('HEAD', '/no/such/thing', method => 'HEAD');
    is($x->{status}, 404, 'HEAD of an unknown path: 404');
    is($x->{content}, '', 'without a body');
    wait_ok { grep { ($_->{type} // '') eq 'access' && ($_->{status} // 0) == 417 } $s->log_lines } 10,
        'h2o\'s own answers are in the access log';
    like($s->get('/metrics')->{content}, qr/^conduix_http_requests_total\{route="unmatched",method="",status="413"\} [1-9]/m,
        'and counted in /metrics');
    my $nm = `nm -D --defined-only '$CxTest::BIN' 2>/dev/null` . `nm --defined-only '$CxTest::BIN' 2>/dev/null`;
    ok(length $nm, 'nm (binutils) reads the binary');
    unlike($nm, qr/\bh2o_send_error_generic\b/, 'the binary does not define h2o_send_error_generic');
}

# Content type and JSON errors
$r = $s->post($PROTECTED, '{"name":"x"}', token => $admin, 'Content-Type' => 'text/plain');
envelope($r, 415, 'UNSUPPORTED_MEDIA_TYPE', 'text/plain body');
$r = $s->post($PROTECTED, qq({\n  "name": "x",\n  oops\n}), token => $admin);
envelope($r, 400, 'INVALID_JSON', 'malformed JSON');
like($r->{json}{error} // '', qr/line\D{0,3}3\b/i, 'INVALID_JSON names line 3') or diag $r->{json}{error};
like($r->{json}{error} // '', qr/col(umn)?\D{0,3}\d+/i, 'INVALID_JSON names a column') or diag $r->{json}{error};

# Keep-alive survives errors: 404, 405, 401 and then 200 on one connection.
{
    my $c = $s->conn;
    my @steps = (['GET', '/no/such/route', 404], ['POST', '/health', 405, '{}'], ['GET', $PROTECTED, 401],
        ['GET', '/health', 200]);
    my $ok = 0;
    for my $st (@steps) {
        my $x = $c->request($st->[0], $st->[1], defined $st->[3] ?
            (body => $st->[3], headers => { 'Content-Type' => 'application/json' }) : ());
        if ($x->{status} == $st->[2] && !$x->{closed} && defined $x->{headers}{'content-length'}) { $ok++ }
        else { diag "keep-alive step $st->[0] $st->[1]: " . explain($x) }
    }
    is($ok, scalar @steps, 'one connection: 404, 405, 401, 200, each with Content-Length, none closing');
}

# Access log: one JSON line per request.
{
    my $rid = 't02-access-' . $$;
    $s->get('/no/such/access', 'X-Request-ID' => $rid);
    my $line;
    wait_ok {
        ($line) = grep { grep { defined && !ref && $_ eq $rid } values %$_ } $s->log_lines;
        $line;
    } 10, 'access log line with the request id' or diag $s->log_tail;
    $line //= {};
    is($line->{method}, 'GET', 'access log: method');
    is($line->{path}, '/no/such/access', 'access log: path');
    is($line->{status}, 404, 'access log: status');
    my ($dk) = grep { /dur/ } keys %$line;
    ok($dk && $line->{$dk} =~ /^\d+(\.\d+)?$/, 'access log: duration') or diag explain $line;
    my ($bk) = grep { /bytes/ } keys %$line;
    ok($bk && $line->{$bk} =~ /^\d+$/ && $line->{$bk} > 0, 'access log: bytes') or diag explain $line;
    ok(($line->{pid} // 0) > 0 && $line->{pid} != $s->master_pid, "access log: the worker's pid");
    ok(grep({ /^(time|ts|timestamp)$/ } keys %$line), 'access log: time') or diag explain $line;
}

# /metrics, summed over the workers.
{
    $s->get('/health') for 1 .. 20;
    my $m = $s->get('/metrics');
    is($m->{status}, 200, 'GET /metrics is 200');
    like($m->{headers}{'content-type'} // '', qr{^text/plain}, '/metrics is text/plain');
    my $t = $m->{content};
    like($t, qr/^conduix_http_requests_total\{[^}]*route="[^"]*"[^}]*\}/m, 'requests_total has a route label');
    like($t, qr/^conduix_http_requests_total\{[^}]*status="200"[^}]*\}/m, 'requests_total has a status label');
    like($t, qr/^conduix_process_up\b/m, 'conduix_process_up');
    like($t, qr/^# TYPE conduix_http_request_duration_seconds histogram/m, 'latency histogram TYPE');
    like($t, qr/^conduix_http_request_duration_seconds_bucket\{[^}]*le="\+Inf"[^}]*\} \d+/m, 'histogram +Inf bucket');
    my $health = 0;
    while ($t =~ /^conduix_http_requests_total\{([^}]*)\} (\d+)/mg) {
        my ($l, $n) = ($1, $2);
        $health += $n if $l =~ /route="[^"]*health[^"]*"/ && $l =~ /status="200"/;
    }
    cmp_ok($health, '>=', 20, 'at least the 20 GET /health counted, summed over processes');
}

# Authentication on a protected route
$r = $s->get($PROTECTED);
envelope($r, 401, 'UNAUTHORIZED', 'no token');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/, '401 has WWW-Authenticate: Bearer');
envelope($s->get($PROTECTED, token => 'not.a.jwt'), 401, 'UNAUTHORIZED', 'garbage token');
my $expired = jwt_hs256($s->secret, $s->claims(iat => time - 7200, exp => time - 3600));
envelope($s->get($PROTECTED, token => $expired), 401, 'TOKEN_EXPIRED', 'expired token');
my $foreign = jwt_hs256('another-secret-that-is-long-enough-0123456789', $s->claims);
envelope($s->get($PROTECTED, token => $foreign), 401, 'UNAUTHORIZED', 'token signed with another secret');
my $none = jwt_hs256($s->secret, $s->claims, { alg => 'none', typ => 'JWT' });
envelope($s->get($PROTECTED, token => $none), 401, 'UNAUTHORIZED', 'token with alg none');
my $wrongiss = jwt_hs256($s->secret, $s->claims(iss => 'someone-else'));
envelope($s->get($PROTECTED, token => $wrongiss), 401, 'UNAUTHORIZED', 'token with another issuer');
my $handmade = jwt_hs256($s->secret, $s->claims(role => 'viewer'));
isnt($s->get($PROTECTED, token => $handmade)->{status}, 401, 'a valid hand-made viewer token is accepted');
my $viewer = $s->token(role => 'viewer', sub => 't02-viewer');
envelope($s->delete($ADMIN_ONLY, token => $viewer), 403, 'FORBIDDEN', 'viewer on an admin route');
$r = $s->get($PROTECTED, token => $viewer);
ok($r->{status} != 401 && $r->{status} != 403, "viewer may GET $PROTECTED (got $r->{status})");

is($s->stop, 0, 'stop exits 0');
done_testing;
