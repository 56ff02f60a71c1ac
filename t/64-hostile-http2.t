# 64-hostile-http2.t -- the hostile-input suite over HTTP/2 (prior knowledge; h2c upgrade): the envelope
# on every refusal (curl, nghttp, h2load, and frames written by hand here), a body over the limit is 413
# and not a stream reset, protocol abuse (bad frames, floods, a client that never opens its window)
# ends at most its own connection, and the server keeps answering with nothing stored.
use v5.36;
use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use CxTest qw(:DEFAULT run_cmd);
use CxHostile;

my $s = CxTest->new(config => { 'server.max_body_size' => '8KiB', 'server.write_timeout' => '3s' });
$s->start;
my $admin = $s->admin_token;
my $P = '/api/v1/pipelines';
my $url = $s->base_url;
my $r = $s->auth_post($P, { name => 'h64', config_yaml => "a: 1\n" });
is($r->{status}, 201, 'a pipeline to work on');
my $id = $r->{json}{data}{id};
my $snap = CxHostile::snapshot($s);

# curl2 -- a request over HTTP/2 with curl: {status, version, json, content, headers}.
sub curl2(@args) {
    my $out = $s->tmp . '/c2.out';
    my $hdr = $s->tmp . '/c2.hdr';
    unlink $out, $hdr;
    my $x = run_cmd({}, 'curl', '-sS', '--http2-prior-knowledge', '-o', $out, '-D', $hdr, '-w', '%{http_code} %{http_version}',
        @args);
    my ($status, $version) = split ' ', $x->{out};
    my %h = map { /^([^:]+):\s*(.*?)\s*$/ ? (lc $1 => $2) : () } split /\r?\n/, CxTest::slurp($hdr) // '';
    my $content = CxTest::slurp($out) // '';
    my $res = { status => $status // 0, version => $version // '', content => $content, headers => \%h, err => $x->{err},
        request_id => $h{'x-request-id'} };
    $res->{json} = eval { JSON::PP::decode_json($content) } if length $content;
    return $res;
}

my $nfile = 0;
sub body_file($text) {
    my $f = $s->tmp . '/b' . ++$nfile . '.json';
    CxTest::spew($f, $text);
    return "\@$f";
}

my @A = ('-H', "Authorization: Bearer $admin");
my @JSON = ('-H', 'Content-Type: application/json');
$r = curl2("$url/health");
is("$r->{status} $r->{version}", '200 2', 'HTTP/2 with prior knowledge');
$r = run_cmd({}, 'curl', '-sS', '--http2', '-o', '/dev/null', '-w', '%{http_code} %{http_version}', "$url/health");
is($r->{out}, '200 2', 'HTTP/2 by Upgrade: h2c');

my @cases = (
    ['an unknown path', [ "$url/nope" ], 404, 'NOT_FOUND'],
    ['another method', [ '-X', 'PATCH', @A, "$url$P" ], 405, 'METHOD_NOT_ALLOWED'],
    ['no token', [ "$url$P" ], 401, 'UNAUTHORIZED'],
    ['a garbage token', [ '-H', 'Authorization: Bearer x.y.z', "$url$P" ], 401, 'UNAUTHORIZED'],
    ['duplicate JSON keys', [ @A, @JSON, '--data-binary', body_file('{"name":"a","name":"b","config_yaml":"a: 1"}'), "$url$P" ],
        400, 'INVALID_JSON'],
    # docs/api.md: text that is not UTF-8 is VALIDATION_ERROR naming the field (as over HTTP/1, t/60)
    ['a body that is not UTF-8', [ @A, @JSON, '--data-binary', body_file(qq({"name":"\xff","config_yaml":"a: 1"})), "$url$P" ],
        400, 'VALIDATION_ERROR'],
    ['a NO-BREAK SPACE ending a name', [ @A, @JSON, '--data-binary', body_file(qq({"name":"x\xc2\xa0","config_yaml":"a: 1"})),
        "$url$P" ], 400, 'VALIDATION_ERROR'],
    ['a NUL in a query value', [ @A, "$url$P?search=a%00b" ], 400, 'VALIDATION_ERROR'],
    ['page=%201', [ @A, "$url$P?page=%201" ], 400, 'VALIDATION_ERROR'],
    ['a text body', [ @A, '-H', 'Content-Type: text/plain', '--data-binary', 'hello', "$url$P" ], 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a body 1.5x over the limit', [ @A, @JSON, '--data-binary',
        body_file('{"name":"big","config_yaml":"a: 1","description":"' . ('x' x 12000) . '"}'), "$url$P" ], 413, 'PAYLOAD_TOO_LARGE'],
);
for my $c (@cases) {
    my ($what, $args, $status, $code) = @$c;
    my $x = curl2(@$args);
    is($x->{version}, '2', "HTTP/2: $what: answered over HTTP/2");
    CxHostile::refused($s, $x, $status, $code, "HTTP/2: $what", $snap);
}
{
    my $x = curl2(@A, @JSON, '--data-binary', body_file('{"name":"huge","config_yaml":"a: 1","description":"' . ('x' x 40000) . '"}'),
        "$url$P");
    ok($x->{status} == 413 || $x->{status} == 0, "HTTP/2: a body 5x over the limit is refused (413, or h2o's reset: got $x->{status})");
    is($s->get('/health')->{status}, 200, 'HTTP/2: the server still answers');
    is(CxHostile::snapshot($s), $snap, 'HTTP/2: nothing stored');
}

# nghttp: several streams on one connection, each refused on its own.
{
    my $x = run_cmd({}, 'nghttp', '-n', '-s', '-H', 'authorization: Bearer not-a-token', "$url$P", "$url/nope", "$url/health");
    like($x->{out}, qr/\b401\b.*\n.*\b404\b.*\n.*\b200\b/s, 'nghttp: three streams, 401, 404 and 200') or diag "$x->{out}$x->{err}";
    # the Server header is reply.c's (h2o's own is off): one per answer over HTTP/2 too
    $x = run_cmd({}, 'nghttp', '-nv', "$url/health");
    my @server = $x->{out} =~ /recv \(stream_id=\d+\) server: (.*)/g;
    is_deeply(\@server, ['conduix-cp'], 'HTTP/2: one Server header, conduix-cp') or diag "$x->{out}$x->{err}";
}

# h2load: 2000 requests on 10 connections of 50 streams each, half of them refused.
{
    my $x = run_cmd({ timeout => 120 }, 'h2load', '-n', '2000', '-c', '10', '-m', '50', "$url/health", "$url/api/v1/agents");
    my ($ok2, $ok4) = $x->{out} =~ /status codes: (\d+) 2xx, \d+ 3xx, (\d+) 4xx/;
    is(($ok2 // 0) + ($ok4 // 0), 2000, 'h2load: 2000 answers') or diag $x->{out};
    cmp_ok($ok4 // 0, '>=', 900, 'h2load: the unauthenticated half refused with 4xx');
}

# ---- frames by hand ----
# frame -- one HTTP/2 frame: 24-bit length and 8-bit type, flags, stream id, payload.
sub frame($type, $flags, $sid, $payload = '') { pack('NCN', (length($payload) << 8) | $type, $flags, $sid) . $payload }
sub hpack_int($v, $prefix_bits, $first) {
    my $max = (1 << $prefix_bits) - 1;
    return chr($first | $v) if $v < $max;
    my $out = chr($first | $max);
    $v -= $max;
    while ($v >= 128) { $out .= chr(($v & 0x7f) | 0x80); $v >>= 7 }
    return $out . chr($v);
}
# headers -- an HPACK block of literal fields without indexing, no Huffman.
sub headers(@kv) {
    my $b = '';
    while (my ($k, $v) = splice(@kv, 0, 2)) { $b .= "\0" . hpack_int(length $k, 7, 0) . $k . hpack_int(length $v, 7, 0) . $v }
    return $b;
}
use constant PREFACE => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
sub h2conn { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->port, Proto => 'tcp', Timeout => 10) or die $! }
# read_frames -- frames until EOF or TIMEOUT s: ([type, flags, sid, payload], ...) and whether it ended.
sub read_frames($sock, $timeout, $until = undef) {
    my ($buf, @f, $eof) = ('');
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($sock);
    while (time < $deadline) {
        last if $until && grep { $until->($_) } @f;
        if (!$sel->can_read($deadline - time)) { last }
        my $n = sysread($sock, $buf, 65536, length $buf);
        if (!$n) { $eof = 1; last }
        while (length($buf) >= 9) {
            my ($lt, $fl, $sid) = unpack('NCN', substr($buf, 0, 9));
            my $len = $lt >> 8;
            last if length($buf) < 9 + $len;
            push @f, [$lt & 0xff, $fl, $sid & 0x7fffffff, substr($buf, 9, $len)];
            substr($buf, 0, 9 + $len, '');
        }
    }
    return (\@f, $eof);
}
my @req = (':method' => 'GET', ':scheme' => 'http', ':authority' => 'x', ':path' => '/health');
sub goaway_or_eof($what, $bytes) {
    my $c = h2conn();
    syswrite($c, PREFACE . frame(4, 0, 0) . $bytes);
    my ($f, $eof) = read_frames($c, 15, sub { $_[0][0] == 7 });
    ok($eof || grep({ $_->[0] == 7 } @$f), "frames: $what: GOAWAY or close") or diag explain [map { [$_->[0], $_->[1], $_->[2]] } @$f];
    is($s->get('/health')->{status}, 200, "frames: $what: the server still answers");
}
goaway_or_eof('DATA on stream 0', frame(0, 1, 0, 'x'));
goaway_or_eof('HEADERS on an even stream', frame(1, 5, 2, headers(@req)));
goaway_or_eof('CONTINUATION without HEADERS', frame(9, 4, 1, headers(@req)));
goaway_or_eof('garbage HPACK', frame(1, 5, 1, "\xff\xff\xff\xff\xff\xff"));
goaway_or_eof('a WINDOW_UPDATE of 0', frame(8, 0, 0, pack('N', 0)));
goaway_or_eof('SETTINGS of a bad length', frame(4, 0, 0, 'abc'));
goaway_or_eof('a frame of 16 MB declared', pack('N', 0xffffff) . "\0\0\0\0\0" . ('z' x 100));
{
    my $c = h2conn();
    syswrite($c, PREFACE . frame(4, 0, 0) . join('', map { frame(6, 0, 0, 'pingpong') } 1 .. 2000)
        . join('', map { frame(1, 5, 2 * $_ - 1, headers(@req)) . frame(3, 0, 2 * $_ - 1, pack('N', 8)) } 1 .. 500));
    my ($f) = read_frames($c, 15, sub { 0 });
    is($s->get('/health')->{status}, 200, 'frames: 2000 PINGs and 500 streams reset at once: the server still answers');
}
{
    # a header value with a line break: h2o's own 400, rewritten into the envelope
    my $c = h2conn();
    syswrite($c, PREFACE . frame(4, 0, 0) . frame(1, 5, 1, headers(@req, 'x-bad' => "a\r\nInjected: 1")));
    my ($f) = read_frames($c, 10, sub { $_[0][0] == 0 && $_[0][1] & 1 });
    my ($data) = map { $_->[3] } grep { $_->[0] == 0 } @$f;
    my $j = eval { JSON::PP::decode_json($data // '') } // {};
    is($j->{code}, 'BAD_REQUEST', 'frames: a header value with CR LF: 400 BAD_REQUEST in the envelope') or diag explain $f;
}
{
    # a raw NUL in :path is no route, and a raw NUL in the query a 400
    my $c = h2conn();
    syswrite($c, PREFACE . frame(4, 0, 0)
        . frame(1, 5, 1, headers(':method' => 'GET', ':scheme' => 'http', ':authority' => 'x', ':path' => "$P/a\0b",
            authorization => "Bearer $admin"))
        . frame(1, 5, 3, headers(':method' => 'GET', ':scheme' => 'http', ':authority' => 'x', ':path' => "$P?search=h6\0zz",
            authorization => "Bearer $admin")));
    my ($f) = read_frames($c, 10, sub { 0 });
    my %bodies;
    $bodies{ $_->[2] } .= $_->[3] for grep { $_->[0] == 0 } @$f;
    my ($j1, $j3) = map { eval { JSON::PP::decode_json($bodies{$_} // '') } // {} } 1, 3;
    ok(($j1->{code} // '') eq 'NOT_FOUND' || ($j1->{code} // '') eq 'BAD_REQUEST', "frames: a raw NUL in :path's id: $j1->{code}")
        or diag explain \%bodies;
    ok(($j3->{code} // '') eq 'VALIDATION_ERROR' || ($j3->{code} // '') eq 'BAD_REQUEST',
        "frames: a raw NUL in the query: $j3->{code}") or diag explain \%bodies;
}

# A client that never opens its flow-control window: its answer stalls, the connection is cut after
# server.write_timeout and its memory freed; others are not affected.
{
    $s->auth_post($P, { name => "w$_", config_yaml => 'k: ' . ('v' x 60000) . "\n" }) for 1 .. 3;
    my $before = ($s->get('/metrics')->{content} =~ /^conduix_http_write_timeouts_total (\d+)/m)[0] // 0;
    my $c = h2conn();
    syswrite($c, PREFACE . frame(4, 0, 0, pack('nN', 4, 0))    # SETTINGS_INITIAL_WINDOW_SIZE = 0
        . frame(1, 5, 1, headers(':method' => 'GET', ':scheme' => 'http', ':authority' => 'x',
            ':path' => "$P?page_size=100", authorization => "Bearer $admin")));
    my $t0 = time;
    my ($f, $eof) = read_frames($c, 30 * $CxTest::SCALE, sub { 0 });
    my $took = time - $t0;
    ok($eof, sprintf('frames: a window never opened: the connection is closed (after %.1f s)', $took));
    cmp_ok($took, '>=', 2.5, 'not before server.write_timeout');
    my ($n) = $s->get('/metrics')->{content} =~ /^conduix_http_write_timeouts_total (\d+)/m;
    is($n, $before + 1, 'counted in conduix_http_write_timeouts_total');
    is($s->auth_get("$P?page_size=100")->{status}, 200, 'the page is served to a client that reads');
    $snap = CxHostile::snapshot($s);
}
CxHostile::log_is_json($s, 'every log line is JSON');
is(CxHostile::snapshot($s), $snap, 'nothing stored by the refused requests');
is($s->stop, 0, 'clean stop');
done_testing;
