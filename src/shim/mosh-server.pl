#!/usr/bin/perl
# moshwall's mosh-server shim, installed as /usr/local/bin/mosh-server (first on a non-login ssh PATH).
# It runs the real mosh-server with every argument, passes its output on byte for byte, but holds the
# `MOSH CONNECT <port> <key>` line until the moshwall daemon says the port is open (or refuses, or does
# not answer within shim_timeout_ms: then it passes anyway, with a warning), and exits with the real
# server's exit code. Perl because perl-base is Essential on Debian: it starts in a few milliseconds
# where Node takes 50-70 (issue 13), and needs no compiler and no package of its own. It loads no
# module (IO::Socket, POSIX and Socket would cost it 10 ms): only perl's builtins. It only asks: the
# daemon verifies everything itself in /proc. The session key is never logged or sent anywhere.
use strict;

my %DEFAULTS = (
    mosh_server     => '/usr/bin/mosh-server',
    socket_path     => '/run/moshwall/moshwall.sock',
    shim_timeout_ms => 3000,
);
my $CONNECT = qr{^MOSH CONNECT (\d{1,5}) [A-Za-z0-9/+]{22}\r?$};
# A line longer than any MOSH CONNECT line cannot become one: it passes on at once.
my $LONGEST = 128;

# A warning on stderr, with control characters escaped (what moshwall prints is never a terminal command).
sub warn_line {
    my ($text) = @_;
    $text =~ s/([\x00-\x1f\x7f])/sprintf('\\x%02x', ord $1)/ge;
    print STDERR "$text\n";
}

# The three keys the shim needs from the config (a TOML subset: `key = "text"` or `key = 123`); a file
# that says anything else about them is broken, and a broken config must not break mosh: the defaults.
sub shim_config {
    my %config = %DEFAULTS;
    my $file = $ENV{MOSHWALL_CONFIG} // '/etc/moshwall/moshwall.toml';
    open(my $in, '<', $file) or do {
        warn_line("moshwall: cannot read $file ($!); the shim uses the defaults") if exists $ENV{MOSHWALL_CONFIG};
        return \%config;
    };
    my %seen;
    my $table = '';
    while (my $line = <$in>) {
        $line =~ s/\r?\n$//;
        next if $line =~ /^\s*(#.*)?$/;
        if ($line =~ /^\s*\[/) { $table = $line; next; }
        next unless $table eq '' && $line =~ /^\s*(mosh_server|socket_path|shim_timeout_ms)\s*=/;
        my $key = $1;
        my $value;
        if ($key eq 'shim_timeout_ms' && $line =~ /^\s*\w+\s*=\s*(\d{1,7})\s*(#.*)?$/) {
            $value = $1;
        } elsif ($key ne 'shim_timeout_ms' && $line =~ /^\s*\w+\s*=\s*"(\/[^"\\\x00-\x1f]*)"\s*(#.*)?$/) {
            $value = $1;
        }
        if (!defined $value || $seen{$key}++) {
            warn_line("moshwall: $file: $key is not one plain value the shim can read; the shim uses the defaults");
            return {%DEFAULTS};
        }
        $config{$key} = $value;
    }
    close $in;
    return \%config;
}

# Writes every byte, however many writes it takes (a pipe or tty may take a part).
sub put {
    my ($data) = @_;
    my $done = 0;
    while ($done < length $data) {
        my $wrote = syswrite(STDOUT, $data, length($data) - $done, $done);
        if (!defined $wrote) {
            next if $!{EINTR};
            return;
        }
        $done += $wrote;
    }
}

# The text of a JSON string's body, its escapes undone (enough for the daemon's one-line answers).
sub json_text {
    my ($body) = @_;
    my %simple = ('"' => '"', '\\' => '\\', '/' => '/', b => "\b", f => "\f", n => "\n", r => "\r", t => "\t");
    $body =~ s{\\(?:u([0-9a-fA-F]{4})|(.))}{defined $1 ? chr(hex $1) : ($simple{$2} // $2)}ge;
    return $body;
}

# A stream socket connected to the unix socket at $path, or undef with $! set. AF_UNIX is 1 on every
# Linux; SOCK_STREAM is 1 too except on MIPS (2), where the connect fails (EPROTOTYPE) and the Socket
# module, loaded then only, says what it is.
sub connect_unix {
    my ($path) = @_;
    my $address = pack('S Z108', 1, $path);
    for my $type (1, undef) {
        if (!defined $type) {
            require Socket;
            $type = Socket::SOCK_STREAM();
            return undef if $type == 1;
        }
        socket(my $socket, 1, $type, 0) or return undef;
        return $socket if connect($socket, $address);
        return undef unless $!{EPROTOTYPE};
        close $socket;
    }
    return undef;
}

# Asks the daemon to open $port; returns undef when it did, or the warning to print.
sub ask_daemon {
    my ($config, $port) = @_;
    my $socket = connect_unix($config->{socket_path});
    return "moshwall: could not reach the moshwall daemon ($!); its poll will open port $port"
        unless $socket;
    syswrite($socket, qq({"op":"open","port":$port}\n));
    my $answer = '';
    my $readable = '';
    vec($readable, fileno($socket), 1) = 1;
    # The daemon writes its answer in one go: the first wait takes the whole timeout, the rest of a line
    # that came in parts gets 100 ms per part, ten parts at most (perl's builtins have no sub-second clock).
    my $waits = 0;
    while (index($answer, "\n") < 0) {
        my $wait = $waits++ == 0 ? $config->{shim_timeout_ms} / 1000 : 0.1;
        my $why;
        my $ready = $waits > 11 ? 0 : select(my $out = $readable, undef, undef, $wait);
        if ($ready < 0 && $!{EINTR}) {
            next;
        } elsif ($ready <= 0) {
            $why = "no answer from $config->{socket_path} within $config->{shim_timeout_ms} ms";
        } else {
            my $got = sysread($socket, $answer, 4096, length $answer);
            $why = 'the daemon closed the connection' if defined $got && $got == 0;
            $why = "reading its answer: $!" if !defined $got && !$!{EINTR};
            $why = 'answer too long' if length $answer > 4096;
        }
        if (defined $why) {
            close $socket;
            return "moshwall: could not reach the moshwall daemon ($why); its poll will open port $port";
        }
    }
    close $socket;
    my ($line) = split /\n/, $answer, 2;
    return undef if $line =~ /^\{"ok":true[,}]/;
    if ($line =~ /^\{"ok":false[,}]/) {
        my ($error) = $line =~ /"error":"((?:[^"\\]|\\.)*)"/;
        return "moshwall: the firewall was not opened for port $port: " . json_text($error // 'refused');
    }
    return "moshwall: could not reach the moshwall daemon (unreadable answer from the daemon); its poll will open port $port";
}

# True when both paths name the same file.
sub same_file {
    my ($a, $b) = @_;
    my @x = stat $a or return 0;
    my @y = stat $b or return 0;
    return $x[0] == $y[0] && $x[1] == $y[1];
}

my $config = shim_config();
if (same_file($config->{mosh_server}, $0)) {
    warn_line("moshwall: mosh_server ($config->{mosh_server}) is the shim itself; set it to the real mosh-server");
    exit 1;
}

pipe(my $from_server, my $to_shim) or do { warn_line("moshwall: pipe: $!"); exit 1 };
my $pid = fork;
if (!defined $pid) {
    warn_line("moshwall: fork: $!");
    exit 1;
}
if ($pid == 0) {
    close $from_server;
    open(STDOUT, '>&', $to_shim) or exit 127;
    close $to_shim;
    exec { $config->{mosh_server} } $config->{mosh_server}, @ARGV;
    warn_line("moshwall: cannot run $config->{mosh_server}: $!");
    exit 127;
}
close $to_shim;
binmode STDOUT;
binmode $from_server;

# Passes output on, line by line until MOSH CONNECT has been seen and answered, then as it comes.
my $partial = '';
my $long_line = 0;
my $answered = 0;
while (1) {
    my $chunk = '';
    my $got = sysread($from_server, $chunk, 65536);
    if (!defined $got) {
        next if $!{EINTR};
        last;
    }
    last if $got == 0;
    if ($answered) { put($chunk); next; }
    my $data = $partial . $chunk;
    $partial = '';
    if ($long_line) {
        my $end = index($data, "\n");
        if ($end < 0) { put($data); next; }
        put(substr($data, 0, $end + 1, ''));
        $long_line = 0;
    }
    while ((my $end = index($data, "\n")) >= 0) {
        my $line = substr($data, 0, $end);
        if ($line =~ $CONNECT && $1 >= 1 && $1 <= 65535) {
            my $warning = ask_daemon($config, $1);
            warn_line($warning) if defined $warning;
            $answered = 1;
            last;
        }
        put(substr($data, 0, $end + 1, ''));
    }
    if ($answered) { put($data); next; }
    if (length $data > $LONGEST) { put($data); $long_line = 1; next; }
    $partial = $data;
}
put($partial);
close $from_server;

my $status;
while ((my $ended = waitpid($pid, 0)) != $pid) {
    if ($ended == -1 && !$!{EINTR}) { $status = 1 << 8; last; }
}
$status //= $?;
exit(($status & 127) ? 128 + ($status & 127) : $status >> 8);
