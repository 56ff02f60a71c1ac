# 63-slow-readers.t -- clients that ask for large answers and read nothing cannot pin the worker's memory:
# a list page is bounded in bytes (a config over 64 KiB is left out of lists, GET /pipelines/:id has it),
# an answer's write that makes no progress for server.write_timeout aborts its connection, a worker holds
# at most 64 MiB of unsent answers at once (beyond it 503 SERVICE_UNAVAILABLE; conduix_http_unsent_bytes_max
# is its high-water mark), and the server keeps answering.
use v5.36;
use Test::More;
use Socket qw(:all);
use Time::HiRes qw(time sleep);
use CxTest;

# The write timeout is scaled like the waits, and long enough (6 s) for the 20 pages of 12 MB to be built
# on a loaded 2-core machine before the first is given up, so that both outcomes (cut off, refused) occur.
# What a worker held at once is its own high-water mark, conduix_http_unsent_bytes_max.
my $write_ms = int(6000 * $CxTest::SCALE);
my $s = CxTest->new(workers => 2, config => { 'server.write_timeout' => "${write_ms}ms", 'server.max_body_size' => '2MiB' });
$s->start;
my $admin = $s->admin_token;
my $viewer = $s->token(role => 'viewer', sub => 't63-viewer');

# 100 pipelines with 60 KB of description and of config each (a 12 MB page), and 3 with 1 MiB configs.
my $desc = 'd' x 60000;
my $yaml = "k: " . ('v' x 59990) . "\n";
for my $i (1 .. 100) {
    my $r = $s->auth_post('/api/v1/pipelines', { name => sprintf('p%03d', $i), description => $desc, config_yaml => $yaml });
    $r->{status} == 201 or BAIL_OUT("create p$i: $r->{status} $r->{content}");
}
my $huge = "k: " . ('h' x (1024 * 1024 - 10)) . "\n";
my @big;
for my $i (1 .. 3) {
    my $r = $s->auth_post('/api/v1/pipelines', { name => "huge$i", config_yaml => $huge });
    is($r->{status}, 201, "a pipeline with a 1 MiB config ($i)") or diag $r->{content};
    push @big, $r->{json}{data}{id};
}

# The page's bytes are bounded: the 1 MiB configs are left out of the list.
my $r = $s->get('/api/v1/pipelines?page_size=100&sort=name', token => $viewer);
is($r->{status}, 200, 'a page of 100');
my @items = @{ $r->{json}{data}{items} // [] };
is(scalar @items, 100, '100 items');
cmp_ok(length $r->{content}, '<', 100 * (2 * 65536 + 1024), 'the page is at most 100 x (64 KiB + 64 KiB + metadata)');
my @huge = grep { $_->{name} =~ /^huge/ } @items;
is(scalar @huge, 3, 'the three large pipelines are on the page');
is_deeply([map { [$_->{config_yaml}, $_->{config_yaml_omitted}, $_->{config_yaml_size}] } @huge],
    [map { [undef, JSON::PP::true, length $huge] } 1 .. 3], 'their config is left out: null, omitted, its size')
    or diag explain [map { { %$_, config_yaml => substr($_->{config_yaml} // '', 0, 20) } } @huge];
my ($small) = grep { $_->{name} eq 'p001' } @items;
is($small->{config_yaml}, $yaml, 'a 60 KB config is in the list');
ok(!exists $small->{config_yaml_omitted}, 'without the omitted flag');
my $one = $s->get("/api/v1/pipelines/$big[0]", token => $viewer);
is($one->{json}{data}{config_yaml}, $huge, 'GET /pipelines/:id has the whole 1 MiB config');
my $v = $s->get("/api/v1/pipelines/$big[0]/versions", token => $viewer);
is($v->{json}{data}{items}[0]{config_yaml_omitted}, JSON::PP::true, 'the version history leaves it out too');

# slow_client -- a connection with a tiny receive window that sends a request and reads nothing.
sub slow_client($path) {
    socket(my $fh, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($fh, SOL_SOCKET, SO_RCVBUF, 4096) or die "SO_RCVBUF: $!";
    connect($fh, pack_sockaddr_in($s->port, inet_aton('127.0.0.1'))) or die "connect: $!";
    my $req = "GET $path HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $viewer\r\n\r\n";
    syswrite($fh, $req) == length $req or die "write: $!";
    return $fh;
}

# drain -- read what the server left for the connection: {status, length (Content-Length), got (bytes of
# body), end ('eof' or the error)}.
sub drain($fh) {
    my ($buf, $end) = ('', 'eof');
    my $sel = IO::Select->new($fh);
    while ($sel->can_read(15)) {
        my $n = sysread($fh, $buf, 1 << 20, length $buf);
        if (!defined $n) { $end = "$!"; last }
        last if $n == 0;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.1 (\d{3})};
    my ($len) = ($head // '') =~ /^content-length: *(\d+)/mi;
    return { status => $status // 0, length => $len // -1, got => length($body // ''), end => $end, body => $body };
}

my $held0 = () = $s->get('/metrics')->{content} =~ /x/;    # warm
my @slow = map { slow_client('/api/v1/pipelines?page_size=100&sort=name') } 1 .. 20;
my ($worst, @lat) = (0);
for (1 .. 10) {
    my $t0 = time;
    my $h = $s->get('/health');
    my $dt = time - $t0;
    push @lat, $dt;
    $worst = $dt if $dt > $worst;
    is($h->{status}, 200, "/health answers while 20 clients read nothing ($_)") if $_ == 1 || $_ == 10;
    sleep 0.1;
}
note(sprintf('/health latency with 20 slow readers: worst %.3f s, last %.3f s', $worst, $lat[-1]));
cmp_ok($worst, '<', 5 * $CxTest::SCALE, sprintf('/health stays responsive (worst %.2f s)', $worst));

wait_ok {
    my ($n) = $s->get('/metrics')->{content} =~ /^conduix_http_write_timeouts_total (\d+)/m;
    ($n // 0) >= 1
} 30, 'stalled answers are aborted after server.write_timeout';
sleep $write_ms / 1000 + 1;    # every stalled write has had its write timeout
my (%outcome, @odd);
for my $fh (@slow) {
    my $d = drain($fh);
    if ($d->{status} == 503) {
        my $j = eval { JSON::PP::decode_json($d->{body}) } // {};
        if (($j->{code} // '') eq 'SERVICE_UNAVAILABLE' && $d->{got} == $d->{length}) { $outcome{busy}++ } else { push @odd, $d }
    } elsif ($d->{status} == 200 && $d->{length} > 0 && $d->{got} < $d->{length}) {
        $outcome{aborted}++;
    } else {
        push @odd, { %$d, body => substr($d->{body} // '', 0, 100) };
    }
}
note(explain \%outcome);
is(scalar @odd, 0, 'each slow client was either cut off mid-answer or refused with a whole 503') or diag explain \@odd;
cmp_ok($outcome{aborted} // 0, '>=', 1, 'some answers were cut off');
my $m = $s->get('/metrics')->{content};
my ($timeouts) = $m =~ /^conduix_http_write_timeouts_total (\d+)/m;
my ($busy) = $m =~ /^conduix_http_busy_total (\d+)/m;
is($timeouts, $outcome{aborted} // 0, 'conduix_http_write_timeouts_total counts them');
is($busy // 0, $outcome{busy} // 0, 'conduix_http_busy_total counts the 503s');
# What a worker held at once, from its own high-water mark: not the aborted answers times their size,
# which counts what went out over time (an answer given up frees its bytes for the next).
my %max = $m =~ /^conduix_http_unsent_bytes_max\{index="(\d+)",pid="\d+"\} (\d+)$/mg;
is(scalar keys %max, 2, 'conduix_http_unsent_bytes_max: a line for each worker') or diag $m;
my ($top) = sort { $b <=> $a } values %max;
cmp_ok($top // 0, '>', 4 * 1024 * 1024, sprintf('the slow answers were held (the most: %.1f MiB)', ($top // 0) / 1048576));
cmp_ok($top // 0, '<=', 64 * 1024 * 1024 + 64 * 1024, 'no worker held more than its 64 MiB (and small answers) at once')
    or diag explain \%max;
wait_ok { grep { ($_->{msg} // '') =~ /closing the connection: its client read nothing for $write_ms ms/ } $s->log_lines } 10,
    'each abort is logged';

# Afterwards the memory is free again: a reader that reads gets the whole page, on each worker.
for (1 .. 4) {
    $r = $s->get('/api/v1/pipelines?page_size=100&sort=name', token => $viewer);
    is($r->{status}, 200, "a normal client gets the page again ($_)");
}
is(scalar @{ $r->{json}{data}{items} // [] }, 100, 'all of it');
wait_ok {
    my @unsent = $s->get('/metrics')->{content} =~ /^conduix_http_unsent_bytes\{[^}]*\} (\d+)$/mg;
    @unsent == 2 && !grep { $_ != 0 } @unsent
} 10, 'conduix_http_unsent_bytes is 0 on both workers once the answers are written or given up';
is($s->sql('SELECT COUNT(*) AS n FROM pipelines')->[0]{n}, 103, 'nothing stored or lost');
is($s->stop, 0, 'clean stop');
done_testing;
