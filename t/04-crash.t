# 04-crash.t -- a child killed with SIGKILL is logged and respawned with its title, and the server keeps
# answering meanwhile (worker, scheduler, hbmon).
use v5.36;
use Test::More;
use CxTest;

my $N = 2;
my $s = CxTest->new(workers => $N);
$s->start;
ok($s->wait_children, 'all children up');

# crash -- SIGKILL the child titled "conduix-cp: NAME"; check it comes back and the log says so.
sub crash($name, $kind) {
    my $old = $s->child_pid($name);
    ok($old, "found conduix-cp: $name (pid " . ($old // '?') . ')') or return;
    my @before = $s->children;
    my $before = @before;
    kill 'KILL', $old;
    # Requests on fresh connections while the child is gone and respawned: none may fail.
    my ($sent, $failed, $new) = (0, 0, undef);
    my $deadline = time + 30 * $CxTest::SCALE;
    while (time < $deadline) {
        my $r = $s->get('/health');
        $sent++;
        if ($r->{status} != 200) { $failed++; diag "request failed: $r->{status} $r->{content}" if $failed <= 3 }
        $new = $s->child_pid($name);
        last if $new && $new != $old && $sent >= 20;
        Time::HiRes::sleep(0.02);
    }
    ok($new && $new != $old, "conduix-cp: $name respawned (new pid " . ($new // 'none') . ')');
    ok(!CxTest::proc_alive($old), "the old $name $old is gone");
    is($failed, 0, "all $sent requests answered 200 while $name was down and respawned");
    wait_ok { scalar(() = $s->children) == $before } 30, "back to $before children"
        or diag explain { before => [map { "$_->{pid} $_->{title}" } @before], now => [map { "$_->{pid} $_->{title}" } $s->children] };
    wait_ok {
        grep { /\b$old\b/ && /\Q$kind\E/ && /(signal\W{0,3}(9|SIGKILL|KILL)\b|SIGKILL|killed)/i } split /\n/, $s->log;
    } 10, "the log names the $kind, its pid $old and signal 9" or diag $s->log_tail;
    is($s->master_pid, $s->{pid}, 'the master still runs');
}

crash('worker 0', 'worker');
crash('worker 1', 'worker');
crash('scheduler', 'scheduler');
crash('hbmon', 'hbmon');
crash('dispatcher', 'dispatcher') if $s->child_pid('dispatcher');    # when it is a child of its own

# Backoff: the same worker crashing again and again is respawned later each time (doubling from 100 ms).
{
    my @delays;
    for my $i (1 .. 3) {
        my $old = $s->child_pid('worker 1') or last;
        my $t0 = Time::HiRes::time();
        kill 'KILL', $old;
        my $new;
        wait_until { $new = $s->child_pid('worker 1'); $new && $new != $old } 30, 'worker 1 respawned';
        push @delays, Time::HiRes::time() - $t0;
    }
    note(sprintf('respawn delays: %s', join(', ', map { sprintf '%.3f s', $_ } @delays)));
    cmp_ok($delays[-1] // 0, '>=', 0.35, 'the third crash in a row waits at least 350 ms before the respawn');
    is($s->get('/health')->{status}, 200, 'still answering');
}

my $r;
wait_ok { $r = $s->get('/ready'); $r->{status} == 200 } 30, '/ready 200 after the respawns' or diag explain $r;
my $m = $s->get('/metrics')->{content} // '';
like($m, qr/^conduix_\w*restart\w*\{[^}]*worker[^}]*\} [1-9]/m, '/metrics counts worker restarts')
    or diag join "\n", grep { /restart/ } split /\n/, $m;
like($m, qr/^conduix_\w*restart\w*\{[^}]*scheduler[^}]*\} [1-9]/m, '/metrics counts scheduler restarts');

is($s->stop, 0, 'stop exits 0');
done_testing;
