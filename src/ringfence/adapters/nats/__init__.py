"""NATS JetStream: the durable stream agents' health reports travel through when a fleet outgrows one server."""
