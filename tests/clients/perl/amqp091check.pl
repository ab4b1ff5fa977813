#!/usr/bin/perl
# amqp091check.pl — drives an AMQP 0-9-1 broker with AnyEvent::RabbitMQ, the
# client Perl daemons use (Debian's libanyevent-rabbitmq-perl), one scenario
# per run; exits 1 with "FAIL: why" on stderr when the broker does not do what
# RabbitMQ does. Integration test 52-amqp091-perl.py runs each scenario
# against the real broker.
#
#   amqp091check.pl --port 5672 --scenario rpc
use strict;
use warnings;
use AnyEvent;
use AnyEvent::RabbitMQ;
use Getopt::Long;
use JSON::PP;

my %opt = (host => '127.0.0.1', port => 5672, user => 'guest', pass => 'guest', scenario => '');
GetOptions(\%opt, 'host=s', 'port=i', 'user=s', 'pass=s', 'scenario=s') or exit 2;

my $json = JSON::PP->new->canonical;

sub fail { print STDERR "FAIL: @_\n"; exit 1 }

# call(OBJ, METHOD, ARGS...): runs one asynchronous call to its end; returns
# (1, result...) on success, (0, why...) on failure or after 5 s.
sub call {
    my ($obj, $method, %args) = @_;
    my $cv = AE::cv;
    $obj->$method(%args, on_success => sub { $cv->send(1, @_) }, on_failure => sub { $cv->send(0, @_) });
    my $t = AE::timer 5, 0, sub { $cv->send(0, "no answer within 5 s") };
    return $cv->recv;
}

sub must {
    my ($what, $obj, $method, %args) = @_;
    my ($ok, @r) = call($obj, $method, %args);
    fail("$what: " . join(' ', map { ref $_ && $_->can('method_frame') ? $_->method_frame->reply_text : $_ // '' } @r))
        unless $ok;
    return $r[0];
}

# wait_until(COND, SECONDS): serves the event loop until COND() is true.
sub wait_until {
    my ($cond, $secs) = @_;
    my $cv = AE::cv;
    my $poll = AE::timer 0, 0.02, sub { $cv->send(1) if $cond->() };
    my $t = AE::timer $secs, 0, sub { $cv->send(0) };
    return $cv->recv;
}

sub pause { my $s = shift; wait_until(sub { 0 }, $s) }

sub name { sprintf "pl-%s-%08x", $_[0], int rand 0xffffffff }

# connect_broker(\$closed): a connection; sets $closed when it closes.
sub connect_broker {
    my ($closed) = @_;
    return must('connect', AnyEvent::RabbitMQ->new->load_xml_spec, 'connect',
        host => $opt{host}, port => $opt{port}, user => $opt{user}, pass => $opt{pass}, vhost => '/',
        timeout => 5, tune => { heartbeat => 10 },
        on_close => sub { $$closed = 1 if $closed },
        on_read_failure => sub { fail("read failure: @_") });
}

sub channel {
    my ($ar, %args) = @_;
    return must('open_channel', $ar, 'open_channel', %args);
}

sub queue_name { $_[0]->method_frame->queue }

# declare: exchanges of the four kinds, a durable queue bound to a topic
# exchange, routing checked with Basic.Get; the passive declare counts.
sub declare {
    my $ar = connect_broker();
    my $ch = channel($ar);
    must('confirm', $ch, 'confirm');
    for my $type (qw(direct fanout topic headers)) {
        my $x = name($type);
        must("declare $type", $ch, 'declare_exchange', exchange => $x, type => $type, auto_delete => 1);
        must("delete $type", $ch, 'delete_exchange', exchange => $x);
    }
    my $x = name('orders');
    must('declare topic', $ch, 'declare_exchange', exchange => $x, type => 'topic');
    my $q = queue_name(must('declare queue', $ch, 'declare_queue', queue => name('durable'), durable => 1));
    must('bind', $ch, 'bind_queue', queue => $q, exchange => $x, routing_key => 'order.#');
    my $acked = 0;
    for my $key (qw(order.new order.new.eu refund.new)) {
        $ch->publish(exchange => $x, routing_key => $key, body => $json->encode({ key => $key }),
            header => { content_type => 'application/json', delivery_mode => 2 },
            on_ack => sub { $acked++ }, on_nack => sub { fail("publish $key nacked") });
    }
    wait_until(sub { $acked == 3 }, 5) or fail("$acked of 3 publishes confirmed");
    my $ok = must('passive declare', $ch, 'declare_queue', queue => $q, passive => 1);
    $ok->method_frame->message_count == 2 or fail('the topic exchange routed ' . $ok->method_frame->message_count);
    for my $want (qw(order.new order.new.eu)) {
        my $got = must('get', $ch, 'get', queue => $q, no_ack => 1);
        $got->{ok} or fail("get: the queue is empty, want $want");
        my $body = $json->decode($got->{body}->payload);
        $body->{key} eq $want or fail("got $body->{key}, want $want");
        $got->{header}->content_type eq 'application/json' or fail('content type ' . $got->{header}->content_type);
        $got->{header}->delivery_mode == 2 or fail('delivery mode ' . $got->{header}->delivery_mode);
    }
    my $empty = must('get empty', $ch, 'get', queue => $q);
    $empty->{empty} or fail('a message too many in the queue');
    must('delete queue', $ch, 'delete_queue', queue => $q);
    must('delete exchange', $ch, 'delete_exchange', exchange => $x);
    must('close', $ar, 'close');
}

# consume: prefetch 2 with manual acks: never more than 2 unacked; a
# rejected-and-requeued message comes back marked redelivered.
sub consume {
    my $ar = connect_broker();
    my $ch = channel($ar);
    my $q = queue_name(must('declare', $ch, 'declare_queue', queue => name('work'), exclusive => 1));
    must('confirm', $ch, 'confirm');
    my $acked = 0;
    $ch->publish(routing_key => $q, body => "job $_", on_ack => sub { $acked++ }) for 1 .. 6;
    wait_until(sub { $acked == 6 }, 5) or fail("$acked of 6 publishes confirmed");
    must('qos', $ch, 'qos', prefetch_count => 2);
    my @got;
    must('consume', $ch, 'consume', queue => $q, no_ack => 0, on_consume => sub { push @got, shift });
    wait_until(sub { @got >= 2 }, 3) or fail('no deliveries');
    pause(0.3);
    @got == 2 or fail(scalar(@got) . ' unacked deliveries with prefetch 2');
    # The first goes back to the queue, the second is acked: two more come,
    # the first of them the requeued one, marked.
    $ch->reject(delivery_tag => $got[0]{deliver}->method_frame->delivery_tag, requeue => 1);
    $ch->ack(delivery_tag => $got[1]{deliver}->method_frame->delivery_tag);
    wait_until(sub { @got >= 4 }, 3) or fail('nothing after reject and ack');
    my $again = $got[2];
    $again->{body}->payload eq 'job 1' or fail('requeued message: ' . $again->{body}->payload);
    $again->{deliver}->method_frame->redelivered or fail('the requeued message is not marked redelivered');
    $acked = 2;  # deliveries settled: $got[0] rejected, $got[1] acked
    while (1) {
        $ch->ack(delivery_tag => $got[$_]{deliver}->method_frame->delivery_tag) for $acked .. $#got;
        $acked = @got;
        last if @got >= 7;
        wait_until(sub { @got > $acked }, 3) or fail("stuck after $acked deliveries");
        pause(0.05);
        @got - $acked <= 2 or fail(@got - $acked . ' unacked deliveries with prefetch 2');
    }
    pause(0.2);
    @got == 7 or fail(scalar(@got) . ' deliveries of 6 messages and one requeued');
    my @bodies = map { $_->{body}->payload } @got;
    "@bodies" eq 'job 1 job 2 job 1 job 3 job 4 job 5 job 6' or fail("deliveries: @bodies");
    must('close', $ar, 'close');
}

# rpc: a server on one connection doubles numbers; the client asks over an
# exclusive server-named queue, then over direct reply-to.
sub rpc {
    my $server = connect_broker();
    my $sch = channel($server);
    my $rq = queue_name(must('declare rpc', $sch, 'declare_queue', queue => name('rpc'), auto_delete => 1));
    my @seen_reply_to;
    must('serve', $sch, 'consume', queue => $rq, no_ack => 0, on_consume => sub {
        my $m = shift;
        my $h = $m->{header};
        push @seen_reply_to, $h->reply_to;
        my $in = $json->decode($m->{body}->payload);
        $sch->publish(routing_key => $h->reply_to, body => $json->encode({ n2 => $in->{n} * 2 }),
            header => { correlation_id => $h->correlation_id, content_type => 'application/json' });
        $sch->ack(delivery_tag => $m->{deliver}->method_frame->delivery_tag);
    });

    my $client = connect_broker();
    my $ch = channel($client);
    my $own = queue_name(must('reply queue', $ch, 'declare_queue', queue => '', exclusive => 1));
    $own =~ /^amq\.gen-/ or fail("server-named queue $own");
    for my $reply_to ($own, 'amq.rabbitmq.reply-to') {
        my %replies;
        must("consume $reply_to", $ch, 'consume', queue => $reply_to, no_ack => 1, on_consume => sub {
            my $m = shift;
            $replies{ $m->{header}->correlation_id } = $json->decode($m->{body}->payload)->{n2};
        });
        @seen_reply_to = ();
        for my $n (1 .. 3) {
            $ch->publish(routing_key => $rq, body => $json->encode({ n => $n }),
                header => { reply_to => $reply_to, correlation_id => "$reply_to-$n" });
        }
        wait_until(sub { keys %replies == 3 }, 5) or fail("replies via $reply_to: " . join(',', %replies));
        $replies{"$reply_to-$_"} == 2 * $_ or fail("reply $_ via $reply_to: $replies{\"$reply_to-$_\"}") for 1 .. 3;
        if ($reply_to eq $own) {
            (grep { $_ ne $own } @seen_reply_to) and fail("the server saw reply_to @seen_reply_to");
        } else {
            (grep { !/^amq\.rabbitmq\.reply-to\../ } @seen_reply_to)
                and fail("direct reply-to: the server saw reply_to @seen_reply_to");
        }
    }
    must('close', $client, 'close');
    must('close', $server, 'close');
}

# errors: a passive declare of a missing queue closes the channel with 404
# (the channel's on_close says so) and the connection goes on; a mandatory
# publish with no route comes back with 312 NO_ROUTE.
sub errors {
    my $conn_closed = 0;
    my $ar = connect_broker(\$conn_closed);
    my $why;
    my $ch = channel($ar, on_close => sub { $why = shift });
    my ($ok, $frame) = call($ch, 'declare_queue', queue => name('missing'), passive => 1);
    $ok and fail('a passive declare of a missing queue succeeded');
    wait_until(sub { $why }, 3) or fail('the channel did not close');
    $why->method_frame->reply_code == 404 or fail('channel closed with ' . $why->method_frame->reply_code);
    pause(0.2);
    $conn_closed and fail('the channel error closed the connection');
    # This client hands a Basic.Return to the publish's own on_return in
    # confirm mode (it tags the message's headers to match them up).
    my $ch2 = channel($ar);
    must('confirm', $ch2, 'confirm');
    my (@returned, %acked);
    my $x = name('ret');
    must('declare', $ch2, 'declare_exchange', exchange => $x, type => 'direct', auto_delete => 1);
    my $q = queue_name(must('declare', $ch2, 'declare_queue', queue => '', exclusive => 1));
    must('bind', $ch2, 'bind_queue', queue => $q, exchange => $x, routing_key => 'here');
    for my $key (qw(nowhere here)) {
        $ch2->publish(exchange => $x, routing_key => $key, body => $key, mandatory => 1,
            on_return => sub { push @returned, shift }, on_ack => sub { $acked{$key} = 1 },
            on_nack => sub { fail("publish to $key nacked") });
    }
    wait_until(sub { keys %acked == 2 }, 3) or fail('publishes confirmed: ' . join(' ', keys %acked));
    @returned or fail('no Basic.Return (before the Basic.Ack)');
    pause(0.2);
    @returned == 1 or fail(scalar(@returned) . ' returns');
    my $r = $returned[0]->method_frame;
    ($r->reply_code == 312 && $r->reply_text eq 'NO_ROUTE' && $r->exchange eq $x && $r->routing_key eq 'nowhere')
        or fail('return: ' . $r->reply_code . ' ' . $r->reply_text . ' ' . $r->routing_key);
    my $got = must('get', $ch2, 'get', queue => $q);
    ($got->{ok} && $got->{body}->payload eq 'here') or fail('the routed message is not there');
    must('delete exchange', $ch2, 'delete_exchange', exchange => $x);
    must('close', $ar, 'close');
}

my %scenarios = (declare => \&declare, consume => \&consume, rpc => \&rpc, errors => \&errors);
my $run = $scenarios{ $opt{scenario} } or do { print STDERR "amqp091check.pl: unknown --scenario '$opt{scenario}'\n"; exit 2 };
$run->();
print "ok $opt{scenario}\n";
