# 62-http-framing.t -- request heads and bodies libh2o 2.2.5 would refuse in plain text, or take when it
# should not, answered in the envelope (src/http/conn.c): a malformed or HTTP/0.9 head, more than 100
# header fields, a head over h2o's 400 KiB, conflicting Content-Lengths, Content-Length with
# Transfer-Encoding, a Content-Length over server.max_body_size (before the body is read); the same on a
# kept-alive connection's later request; and an HTTP/2 body over the limit gets 413, not a stream reset.
# Each: the status, the envelope, the access log, nothing stored, and the server still answers.
use v5.36;
use Test::More;
use Time::HiRes qw(time sleep);
use CxTest;

my $s = CxTest->new(config => { 'server.max_body_size' => '4KiB' });
$s->start;
my $admin = $s->admin_token;
my $P = '/api/v1/pipelines';

sub pipelines { $s->sql('SELECT COUNT(*) AS n FROM pipelines')->[0]{n} }

# refused -- send RAW on a fresh connection: STATUS and CODE in the envelope, the connection closed,
# logged under its request id, counted; nothing stored; /health still 200.
sub refused($raw, $status, $code, $what, $pre = undef) {
    subtest $what => sub {
        my $before = pipelines();
        my $c = $s->conn;
        if ($pre) {
            my $x = $c->request(@$pre);
            is($x->{status}, 200, 'the first request on the connection is answered');
        }
        $c->send_raw($raw);
        my $r = $c->read_response(timeout => 15);
        is($r->{status}, $status, "status $status") or diag explain $r;
        like($r->{headers}{'content-type'} // '', qr{^application/json}, 'JSON');
        is(ref $r->{json}, 'HASH', 'an envelope') or return;
        ok(JSON::PP::is_bool($r->{json}{success}) && !$r->{json}{success}, 'success false');
        is($r->{json}{code}, $code, "code $code");
        ok(length($r->{json}{error} // ''), "error: $r->{json}{error}");
        ok($r->{request_id} && $r->{json}{request_id} eq $r->{request_id}, 'request_id in the body and X-Request-ID');
        is($r->{headers}{'content-length'}, length $r->{content}, 'Content-Length');
        ok($r->{closed}, 'Connection: close');
        ok($c->at_eof(10), 'and the server closes it');
        my $rid = $r->{request_id} // 'none';
        wait_ok { grep { ($_->{type} // '') eq 'access' && ($_->{request_id} // '') eq $rid && $_->{status} == $status }
            $s->log_lines } 10, 'an access-log line with its request id and status';
        is(pipelines(), $before, 'nothing stored');
        is($s->get('/health')->{status}, 200, 'the server still answers');
    };
}

my $auth = "Authorization: Bearer $admin\r\nContent-Type: application/json\r\n";
my $body = '{"name":"p62","config_yaml":"a: 1"}';
my $len = length $body;

refused("GET /health\r\n\r\n", 400, 'BAD_REQUEST', 'HTTP/0.9 request line');
refused("GET /health HTTP/1.1\r\nHost x\r\n\r\n", 400, 'BAD_REQUEST', 'a header line without a colon');
refused("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" . ("\0" x 40) . "\r\n\r\n", 400, 'BAD_REQUEST', 'TLS to the plain port');
refused("GET /health HTTP/1.1\r\nHost: x\r\n" . join('', map { "X-H$_: v\r\n" } 1 .. 1000) . "\r\n", 431,
    'HEADERS_TOO_LARGE', '1000 header fields');
refused("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " . ('a' x (1024 * 1024)) . "\r\n\r\n", 431, 'HEADERS_TOO_LARGE',
    'a 1 MiB header');
refused("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: $len\r\nContent-Length: " . ($len + 5)
    . "\r\n\r\n$body", 400, 'BAD_REQUEST', 'two differing Content-Length headers');
refused("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    . sprintf("%x\r\n%s\r\n0\r\n\r\n", $len, $body), 400, 'BAD_REQUEST', 'Content-Length and Transfer-Encoding');
{
    my $t0 = time;
    refused("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 6000\r\n\r\n", 413, 'PAYLOAD_TOO_LARGE',
        'Content-Length over server.max_body_size, body not sent');
    cmp_ok(time - $t0, '<', 8 * $CxTest::SCALE, 'answered without waiting for the body (h2o would wait 10 s)');
}
refused("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nContent-Length: 5, 6\r\n\r\nhello", 400, 'BAD_REQUEST',
    'a Content-Length repeated as a list');
refused("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: -1\r\n\r\n", 400, 'BAD_REQUEST', 'a negative Content-Length');
refused("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: gzip\r\n\r\n", 400, 'BAD_REQUEST',
    'a Transfer-Encoding other than chunked');
refused("GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400, 'BAD_REQUEST', 'a NUL in a header value');
refused("GET /health HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400, 'BAD_REQUEST', 'a space in a header name');
refused("GET /health HTTP/7.1\r\nHost: x\r\n\r\n", 400, 'BAD_REQUEST', 'HTTP/7.1');
refused("GARBAGE\r\n\r\n", 400, 'BAD_REQUEST', 'a broken head after a good request on a kept-alive connection',
    ['GET', '/health']);
refused("GET /health HTTP/1.1\r\nHost: x\r\n" . join('', map { "X-H$_: v\r\n" } 1 .. 200) . "\r\n", 431,
    'HEADERS_TOO_LARGE', 'too many fields in a later request', ['GET', '/health']);

# What is fine stays fine: the same Content-Length twice, 100 header fields, a 4 KiB body.
{
    my $c = $s->conn;
    $c->send_raw("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: $len\r\nContent-Length: $len\r\n\r\n$body");
    my $r = $c->read_response(timeout => 10);
    is($r->{status}, 201, 'the same Content-Length twice is taken (RFC 9110)') or diag explain $r;
    $r = $c->request('GET', '/health', headers => { map { ("X-H$_" => 'v') } 1 .. 90 });
    is($r->{status}, 200, '90 more header fields on the same connection: 200');
    my $desc = 'd' x 3900;
    $r = $c->request('POST', $P, body => qq({"name":"p62b","config_yaml":"a: 1","description":"$desc"}),
        headers => { Authorization => "Bearer $admin", 'Content-Type' => 'application/json' });
    is($r->{status}, 201, 'a body just under max_body_size: 201');
    ok(!$r->{closed}, 'and the connection is kept');
}
is(pipelines(), 2, 'two pipelines stored by the good requests');

# A chunked body over the limit: 413 after it is read (h2o reads up to twice the limit).
{
    my $c = $s->conn;
    my $big = '{"name":"p62c","config_yaml":"a: 1","description":"' . ('x' x 5000) . '"}';
    $c->send_raw("POST $P HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n"
        . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big));
    my $r = $c->read_response(timeout => 10);
    is($r->{status}, 413, 'a chunked body over max_body_size: 413');
    is($r->{json}{code}, 'PAYLOAD_TOO_LARGE', 'PAYLOAD_TOO_LARGE');
}

# HTTP/2 (prior knowledge, curl): a body over the limit is 413 in the envelope, not RST_STREAM.
{
    my $file = $s->tmp . '/big.json';
    CxTest::spew($file, '{"name":"h2","config_yaml":"a: 1","description":"' . ('x' x 6000) . '"}');
    my $url = $s->base_url . $P;
    my $r = CxTest::run_cmd({}, 'curl', '-sS', '--http2-prior-knowledge', '-o', $s->tmp . '/h2.out', '-w',
        '%{http_code} %{http_version}', '-H', 'Content-Type: application/json', '-H', "Authorization: Bearer $admin",
        '--data-binary', "\@$file", $url);
    is($r->{out}, '413 2', 'HTTP/2: a 6 KiB body with max_body_size 4KiB is 413 over HTTP/2') or diag $r->{err};
    my $j = eval { JSON::PP::decode_json(CxTest::slurp($s->tmp . '/h2.out')) } // {};
    is($j->{code}, 'PAYLOAD_TOO_LARGE', 'HTTP/2: in the envelope');
    $r = CxTest::run_cmd({}, 'curl', '-sS', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code} %{http_version}',
        $s->base_url . '/health');
    is($r->{out}, '200 2', 'HTTP/2 /health still 200');
}
is(pipelines(), 2, 'still two pipelines');
like($s->get('/metrics')->{content}, qr/^conduix_http_heads_refused_total 1[0-9]\b/m, 'refused heads counted');

is($s->stop, 0, 'clean stop');
done_testing;
