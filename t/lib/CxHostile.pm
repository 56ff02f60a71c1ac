# CxHostile -- what the hostile-input tests (t/60-*.t .. t/65-*.t) share: a snapshot of everything the
# server stores, and the check that a request was refused properly (its status, the envelope, the server
# still answering, nothing stored).
#
#   my $snap = CxHostile::snapshot($s);
#   CxHostile::refused($s, $r, 400, 'INVALID_JSON', 'duplicate keys', $snap);
package CxHostile;

use v5.36;
use Test::More ();
use JSON::PP ();

our @TABLES = qw(pipelines pipeline_versions pipeline_runs agents agent_commands users schedules);

# snapshot -- a checksum of every table the API writes (CHECKSUM TABLE), as one string. Of sessions only
# what a request may change: a token's use updates its last_seen_at, which is bookkeeping. Of the audit
# log every row but the record of a refused sign-in (login_failed), which is what a refusal must write.
sub snapshot($s) {
    my @sums;
    for my $t (@TABLES) {
        my $row = eval { $s->dbh->selectrow_arrayref("CHECKSUM TABLE `$t`") };
        push @sums, "$t=" . ($row ? $row->[1] // 'null' : 'missing');
    }
    my $row = eval { $s->dbh->selectrow_arrayref(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', jti, user_id, expires_at, revoked_at, revoked_by))), 0) FROM sessions") };
    push @sums, 'sessions=' . ($row ? "$row->[0]/$row->[1]" : 'missing');
    $row = eval { $s->dbh->selectrow_arrayref(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', id, action, target_id))), 0) FROM audit_log WHERE action <> 'login_failed'") };
    push @sums, 'audit_log=' . ($row ? "$row->[0]/$row->[1]" : 'missing');
    return join(' ', @sums);
}

# envelope_ok -- r is an error answer in the envelope with STATUS and CODE (a subtest's checks).
sub envelope_ok($r, $status, $code) {
    Test::More::is($r->{status}, $status, "status $status") or Test::More::diag(substr($r->{content} // '', 0, 300));
    Test::More::like($r->{headers}{'content-type'} // '', qr{^application/json}, 'JSON');
    return Test::More::fail('an envelope') unless ref $r->{json} eq 'HASH';
    Test::More::ok(JSON::PP::is_bool($r->{json}{success}) && !$r->{json}{success}, 'success false');
    Test::More::is($r->{json}{code}, $code, "code $code") if defined $code;
    Test::More::ok(length($r->{json}{error} // '') > 0, 'an error message');
    Test::More::ok(length($r->{json}{request_id} // '') > 0 && ($r->{json}{request_id} eq ($r->{request_id} // '')),
        'request_id in the body and the header');
}

# refused -- the answer R to a hostile request: the envelope with STATUS and CODE, the server still
# answering /health, and, when SNAP is given, nothing stored since.
sub refused($s, $r, $status, $code, $what, $snap = undef) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::subtest($what => sub {
        envelope_ok($r, $status, $code);
        Test::More::is($s->get('/health')->{status}, 200, 'the server still answers');
        Test::More::is(snapshot($s), $snap, 'nothing stored') if defined $snap;
    });
    return $r;
}

# log_is_json -- every line of the server's log is one JSON object (no line forged, none broken).
sub log_is_json($s, $what) {
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @bad;
    for my $l (split /\n/, $s->log) {
        next if $l eq '';
        my $o = eval { JSON::PP->new->utf8->decode($l) };
        push @bad, $l unless ref $o eq 'HASH';
    }
    Test::More::is(scalar @bad, 0, $what) or Test::More::diag(join("\n", map { substr($_, 0, 200) } @bad[0 .. ($#bad < 4 ? $#bad : 4)]));
}

1;
