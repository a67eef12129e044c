"""kubectl's protobuf request bodies: the wire decoder (`decode`) and the message tables (`schema`)."""
