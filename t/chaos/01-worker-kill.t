# chaos 1 -- worker SIGKILL x10 under load: only the requests in flight on the killed worker fail, and
# its replacement serves within a second of the master reaping it (the master respawns it after 100 ms,
# 200 ms the second time).
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use Time::HiRes qw(sleep time);

CxChaos::scenario('1 worker SIGKILL x10');
my $W = 5;    # two kills per worker: respawn backoff 100 ms, then 200 ms
my $s = CxChaos::server(workers => $W);
ok($s->wait_children, "$W workers up");
my ($pid) = CxChaos::pipelines($s, 1, 'c1');
my $admin = $s->admin_token;

my @loads = (
    CxLoad->start($s, name => 'health', clients => 3, request => sub ($c, $n) { [GET => '/health'] }),
    CxLoad->start($s, name => 'close', clients => 2, keep_alive => 0, request => sub ($c, $n) { [GET => '/health'] }),
    CxLoad->start($s, name => 'api', clients => 3,
        request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pid", token => $admin] }),
);
sleep 1;
my @kills;
for my $k (0 .. 9) {
    my $i = $k % $W;
    my $victim = $s->child_pid("worker $i") // BAIL_OUT("no worker $i");
    my $t = time;
    kill 'KILL', $victim;
    my $new;
    CxTest::wait_until(sub { $new = $s->child_pid("worker $i"); $new && $new != $victim }, 10, "worker $i respawned");
    push @kills, { t => $t, index => $i, old => $victim, new => $new, respawned => time - $t };
    sleep 1.2;
}
sleep 1;
my @r = map { $_->stop } @loads;
my ($failed, $stalled) = CxChaos::failures([grep { $_->{status} != 200 } @r], $s);
my @failed = @$failed;
# in flight: the kill came while the request was on its way (50 ms either side for the clocks of two processes)
my @stray = grep { my $f = $_; !grep { $f->{t} - 0.05 <= $_->{t} && $_->{t} <= $f->{t} + $f->{dt} + 0.05 } @kills } @failed;

# When each replacement served its first request (the access log names the pid), and when the master
# reaped the killed worker (its log line): the time from a SIGKILL to the reap is the kernel's, ending
# the process, and on the shared machine under load it took up to 1.1 s (the killed worker was seen
# answering until the kill, the master's line came 1.1 s later), so the bound is from the reap.
my (%first, %reaped);
for my $l ($s->log_lines) {
    my $t = CxChaos::unix_time($l->{time});
    if (($l->{type} // '') eq 'access') {
        $first{ $l->{pid} } = $t if !defined $first{ $l->{pid} } || $t < $first{ $l->{pid} };
    } elsif (($l->{proc} // '') eq 'master' && ($l->{msg} // '') =~ /^worker \d+ \(pid (\d+)\) killed by signal 9/) {
        $reaped{$1} = $t;
    }
}
my @serve = map { defined $first{ $_->{new} } ? $first{ $_->{new} } - $_->{t} : 99 } @kills;
my @after_reap = map { defined $first{ $_->{new} } && defined $reaped{ $_->{old} } ? $first{ $_->{new} } - $reaped{ $_->{old} } : 99 } @kills;
my $worst = (sort { $b <=> $a } @after_reap)[0];
my $worst_kill = (sort { $b <=> $a } @serve)[0];
diag(sprintf('kill %d: worker %d pid %d -> %d, respawned %.3f s, serving %.3f s after the kill, %.3f s after the reap', $_ + 1,
    $kills[$_]{index}, $kills[$_]{old}, $kills[$_]{new}, $kills[$_]{respawned}, $serve[$_], $after_reap[$_])) for 0 .. $#kills;

CxChaos::figure('requests sent', scalar(@r), '', @r > 1000);
CxChaos::figure('requests failed', scalar(@failed) . ' (' . CxLoad::by_status(@failed) . ")$stalled", 'in flight on a killed worker only',
    @stray == 0);
CxChaos::figure('failed requests not in flight', scalar(@stray), '0', @stray == 0)
    or diag(join("\n", map { my $f = $_; sprintf('%s %s at %.4f (%.4f s): %d; nearest kill %+.3f s', $f->{method}, $f->{path}, $f->{t},
        $f->{dt}, $f->{status}, (sort { abs($a) <=> abs($b) } map { $_->{t} - $f->{t} } @kills)[0]) } @stray));
CxChaos::figure('kills', scalar(@kills), '10', @kills == 10);
CxChaos::figure('worst time from the reap of a killed worker to its replacement serving', sprintf('%.3f s', $worst), '1 s',
    $worst < 1);
CxChaos::figure('worst time from the kill itself', sprintf('%.3f s', $worst_kill), '', 1);
my $m = $s->get('/metrics')->{content};
my ($restarts) = $m =~ /^conduix_child_restarts_total\{kind="worker"\} (\d+)$/m;
CxChaos::figure('worker restarts counted', $restarts // 0, '10', ($restarts // 0) == 10);
is($s->stop, 0, 'stop exits 0');
done_testing;
