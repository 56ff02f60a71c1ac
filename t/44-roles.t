# 44-roles.t -- every route with every kind of caller: no token, viewer, operator, admin, and an agent
# token (for its own agent id and for another). The least role of each route is the one of the contract
# (V viewer and up, O operator and up, A admin, G the agent itself or an admin, - public): the seed's
# operator has pipeline CRUD including DELETE, run control, and schedule CRUD and control.
use v5.36;
use Test::More;
use CxTest;

my $s = CxTest->new(workers => 1);
$s->start;

my $P = '/api/v1/pipelines/00000000-0000-0000-0000-0000000000aa';
my $U = '/api/v1/users/00000000-0000-0000-0000-0000000000bb';
my $SC = '/api/v1/schedules/00000000-0000-0000-0000-0000000000dd';
my @routes = (
    ['-', GET => '/health'], ['-', GET => '/ready'], ['-', GET => '/metrics'], ['-', GET => '/api/v1/health'],
    ['-', GET => '/api/v1/auth/providers'], ['-', GET => '/api/v1/auth/login/none'], ['-', POST => '/api/v1/auth/login'],
    ['-', GET => '/api/v1/auth/callback/none'], ['-', GET => '/api/v1/auth/callback'],
    ['V', POST => '/api/v1/auth/logout'], ['V', GET => '/api/v1/auth/me'],
    ['A', GET => '/api/v1/users'], ['A', GET => $U], ['A', PUT => $U], ['A', GET => "$U/sessions"],
    ['A', DELETE => '/api/v1/sessions/no-such-jti'],
    ['V', GET => '/api/v1/pipelines'], ['O', POST => '/api/v1/pipelines'], ['V', GET => $P], ['O', PUT => $P],
    ['O', DELETE => $P], ['V', GET => "$P/versions"], ['O', POST => "$P/start"], ['O', POST => "$P/stop"],
    ['O', POST => "$P/pause"], ['O', POST => "$P/resume"], ['V', GET => "$P/status"], ['V', GET => "$P/history"],
    ['V', GET => "$P/metrics"],
    ['V', GET => '/api/v1/schedules'], ['O', POST => '/api/v1/schedules'], ['V', GET => $SC], ['O', PUT => $SC],
    ['O', DELETE => $SC], ['O', POST => "$SC/enable"], ['O', POST => "$SC/disable"], ['O', POST => "$SC/trigger"],
    ['V', GET => '/api/v1/agents'], ['V', GET => '/api/v1/agents/a-44'], ['V', GET => '/api/v1/agents/a-44/status'],
    ['G', POST => '/api/v1/agents/a-44/heartbeat'], ['G', GET => '/api/v1/agents/a-44/commands'],
    ['G', POST => '/api/v1/agents/a-44/commands/00000000-0000-0000-0000-0000000000cc/ack'],
);
my %rank = (viewer => 1, operator => 2, admin => 3);
my %need = ('V' => 1, 'O' => 2, 'A' => 3);
my %tok = map { $_ => $s->token(role => $_, sub => "t44-$_") } qw(viewer operator admin);
$tok{agent} = $s->token(role => 'agent', sub => 'a-44');

sub call($method, $path, $token) {
    my %o = defined $token ? (token => $token) : ();
    # logout revokes the token it is sent with: a token of its own for each call
    if ($path eq '/api/v1/auth/logout' && defined $token) {
        my $role = (grep { $tok{$_} eq $token } keys %tok)[0];
        $o{token} = $s->token(role => $role, sub => $role eq 'agent' ? 'a-44' : "t44-$role");
    }
    return $s->request($method, $path, %o);
}

for my $rt (@routes) {
    my ($least, $method, $path) = @$rt;
    my $r = call($method, $path, undef);
    if ($least eq '-') {
        ok($r->{status} != 401 && $r->{status} != 403, "$method $path without a token: public ($r->{status})");
    } else {
        is($r->{status}, 401, "$method $path without a token: 401");
    }
    for my $role (qw(viewer operator admin agent)) {
        $r = call($method, $path, $tok{$role});
        my $allowed = $least eq '-' ? 1
            : $least eq 'G' ? ($role eq 'admin' || $role eq 'agent')
            : $role eq 'agent' ? 0
            : $rank{$role} >= $need{$least};
        if ($allowed) {
            ok($r->{status} != 401 && $r->{status} != 403, "$method $path as $role: allowed ($r->{status})")
                or diag $r->{content};
        } else {
            is($r->{status}, 403, "$method $path as $role: 403") or diag $r->{content};
            is($r->{json}{code}, 'FORBIDDEN', "  FORBIDDEN");
        }
    }
}

# an agent token is only for its own agent id
for my $rt (grep { $_->[0] eq 'G' } @routes) {
    (my $other = $rt->[2]) =~ s{/agents/a-44/}{/agents/a-other/};
    is(call($rt->[1], $other, $tok{agent})->{status}, 403, "$rt->[1] $other with the token of agent a-44: 403");
}

is($s->stop, 0, 'stop exits 0');
done_testing;
