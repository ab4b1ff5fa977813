#!/usr/bin/perl
# front.pl — the shop's front daemon: places orders (one JSON object a line,
# from the files named or standard input) on the "shop" topic exchange as
# order.placed, persistent, each confirmed by the broker, and reports what
# became of each — the order.processed and order.rejected events the worker
# publishes back — until every order it placed has been reported.
#
#   AMQP_URL=amqp://guest:guest@localhost:5672/ perl front.pl orders.jsonl
use strict;
use warnings;
use AnyEvent;
use AnyEvent::RabbitMQ;
use JSON::PP;

$| = 1;
binmode STDOUT, ':encoding(UTF-8)';
my $url = $ENV{AMQP_URL} // 'amqp://guest:guest@localhost:5672/';
my ($user, $pass, $host, $port) = $url =~ m{^amqp://(?:([^:@]*):([^@]*)@)?([^:/]+)(?::(\d+))?}
    or die "front: cannot read AMQP_URL '$url'\n";
my $timeout = $ENV{FRONT_TIMEOUT} // 60;
my $json = JSON::PP->new->utf8->canonical;  # bodies are UTF-8 JSON

my @orders = map { $json->decode($_) } grep { /\S/ } <>;
die "front: no orders to place\n" unless @orders;
my %pending = map { $_->{id} => 1 } @orders;

my $done = AE::cv;
my $fail = sub { $done->croak("front: @_\n") };
my $reason = sub { my $f = shift; ref $f && $f->can('method_frame') ? $f->method_frame->reply_text : "@_" };

my $ar = AnyEvent::RabbitMQ->new->load_xml_spec;
$ar->connect(
    host => $host, port => $port // 5672, user => $user // 'guest', pass => $pass // 'guest', vhost => '/',
    timeout => 5,
    on_failure => sub { $fail->('connect: ', $reason->(@_)) },
    on_read_failure => sub { $fail->('read: ', @_) },
    on_close => sub { $fail->('the broker closed the connection: ', $reason->(@_)) if %pending },
    on_success => sub { $ar->open_channel(on_failure => $fail, on_success => \&declare) },
);

# The exchange, then a private queue for the events about orders.
sub declare {
    my $ch = shift;
    $ch->declare_exchange(exchange => 'shop', type => 'topic', durable => 1, on_failure => $fail,
        on_success => sub {
            $ch->declare_queue(queue => '', exclusive => 1, on_failure => $fail, on_success => sub {
                my $events = shift->method_frame->queue;
                bind_events($ch, $events, [qw(order.processed order.rejected)]);
            });
        });
}

sub bind_events {
    my ($ch, $events, $keys) = @_;
    return listen_events($ch, $events) unless @$keys;
    my ($key, @rest) = @$keys;
    $ch->bind_queue(queue => $events, exchange => 'shop', routing_key => $key, on_failure => $fail,
        on_success => sub { bind_events($ch, $events, \@rest) });
}

sub listen_events {
    my ($ch, $events) = @_;
    $ch->consume(queue => $events, no_ack => 1, on_failure => $fail, on_consume => \&report,
        on_success => sub { $ch->confirm(on_failure => $fail, on_success => sub { place($ch) }) });
}

sub report {
    my $m = shift;
    my $e = $json->decode($m->{body}->payload);
    my $what = $m->{deliver}->method_frame->routing_key;
    return print "front: event about an order not placed here: $e->{id}\n" unless delete $pending{ $e->{id} };
    if ($what eq 'order.processed') {
        printf "front: order %s processed for %s: %d.%02d %s\n", $e->{id}, $e->{customer},
            $e->{total_cents} / 100, $e->{total_cents} % 100, $e->{currency};
    } else {
        print "front: order $e->{id} rejected: $e->{reason}\n";
    }
    $done->send unless %pending;
}

# Every order, mandatory: an order no queue takes comes back and is an error.
sub place {
    my $ch = shift;
    for my $order (@orders) {
        $ch->publish(exchange => 'shop', routing_key => 'order.placed', mandatory => 1,
            body => $json->encode($order),
            header => { content_type => 'application/json', delivery_mode => 2, correlation_id => "order-$order->{id}" },
            on_ack => sub { print "front: order $order->{id} placed\n" },
            on_nack => sub { $fail->("order $order->{id} refused by the broker") },
            on_return => sub { $fail->("order $order->{id} unroutable: nobody takes orders (is the worker running?)") });
    }
}

my $timer = AE::timer $timeout, 0, sub { $fail->('not reported within ', $timeout, ' s: ', join(' ', sort keys %pending)) };
my $sig = AE::signal TERM => sub { $fail->('stopped with ', scalar(keys %pending), ' orders unreported') };
eval { $done->recv; 1 } or do { print STDERR $@; exit 1 };
print "front: all ", scalar(@orders), " orders reported\n";
my $closed = AE::cv;
$ar->close(on_success => $closed, on_failure => $closed);
$closed->recv;
