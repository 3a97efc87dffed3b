Feature: Protocol I/O stays on the connector's own thread (REQ_0258)

  @REQ_0258 @TEST_2580
  Scenario: Port calls do no protocol I/O on the caller's thread
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "io/t" at QoS 1
    And a writer "out" on "pub" to topic "io/t" at QoS 1
    When "in" is subscribed, probed through "out"
    Then sending 50 values through "out" and receiving them on "in" does no I/O on an MQTT socket on this thread

  @REQ_0258 @TEST_2581
  Scenario: No protocol-stack or event-loop type reaches the application
    Given a broker
    And a started connector "pub"
    And a reader "in" on "pub" for topic "types/t" at QoS 1
    And a writer "out" on "pub" to topic "types/t" at QoS 1
    When "in" is subscribed, probed through "out"
    Then nothing the ports returned for "pub" is a paho or asyncio type

  @REQ_0258 @TEST_2582
  Scenario: Closing leaves no thread of the connector alive
    Given a broker
    And the threads running now are noted
    And a started connector "c"
    And a reader "in" on "c" for topic "thr/t" at QoS 1
    When "c" closes
    Then within 5 seconds no thread started since is alive
