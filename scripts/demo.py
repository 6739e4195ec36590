"""`make demo`: start the local Kafka broker and print its address (the apps join in issue 8)."""
