Feature: What a connector sends keeps the MQTT 3.1.1 client statements (REQ_0257)

  The kit's proxy sees every byte a connector sends. Each scenario below ends with
  an audit of that traffic, statement by statement (the tags that start with MQTT-):
  a statement fails with the packets that break it, and one that no packet of the
  scenario touched is reported as not seen.

  @REQ_0257 @TEST_2611 @MQTT-1.5.3-1 @MQTT-1.5.3-2 @MQTT-2.2.2-1 @MQTT-2.3.1-1 @MQTT-2.3.1-5 @MQTT-3.1.0-1 @MQTT-3.1.0-2 @MQTT-3.1.2-3 @MQTT-3.1.2-11 @MQTT-3.1.2-13 @MQTT-3.1.2-14 @MQTT-3.1.2-15 @MQTT-3.1.2-18 @MQTT-3.1.2-20 @MQTT-3.1.2-22 @MQTT-3.1.3-1 @MQTT-3.1.3-4 @MQTT-3.1.3-7 @MQTT-3.1.3-10 @MQTT-3.3.1-2 @MQTT-3.3.1-3 @MQTT-3.3.1-4 @MQTT-3.3.2-1 @MQTT-3.3.2-2 @MQTT-4.7.1-1 @MQTT-3.8.1-1 @MQTT-3.8.3-1 @MQTT-3.8.3-3 @MQTT-3.8.3-4 @MQTT-3.10.1-1 @MQTT-3.10.3-1 @MQTT-3.10.3-2 @MQTT-4.7.1-2 @MQTT-4.7.1-3 @MQTT-4.7.3-1 @MQTT-4.7.3-2 @MQTT-3.14.4-1 @MQTT-1.5.3-3
  Scenario: A connector's whole life on the wire is what MQTT 3.1.1 lets a client send
    Given a broker
    And a started connector "c"
    And a reader "one" on "c" for filter "life/+/x" at QoS 1
    And a reader "all" on "c" for filter "life/#" at QoS 0
    And a reader "bom" on "c" for topic "life/\ufeffmark" at QoS 1
    And a writer "q0" on "c" to topic "life/a/x" at QoS 0
    And a writer "q1" on "c" to topic "life/b/x" at QoS 1
    And a retained writer "kept" on "c" to topic "life/kept" at QoS 1
    And a writer "mark" on "c" to topic "life/\ufeffmark" at QoS 1
    When "bom" is subscribed, probed through "mark"
    And "q0" sends the value 1
    And "q1" sends the value 2 and it is delivered
    And "kept" sends the value 3 and it is delivered
    And "mark" sends the value 4 and it is delivered
    Then "bom" receives the value 4 with its topic name as sent, U+FEFF kept
    When the reader "all" is closed
    And "c" has had the time to unsubscribe
    And "c" closes
    Then what "c" sent keeps the client statements of this scenario

  @REQ_0255 @TEST_2612 @broker_config @MQTT-3.1.2-19 @MQTT-3.1.2-20 @MQTT-3.1.2-21 @MQTT-3.1.2-22 @MQTT-3.1.3-1 @MQTT-3.1.3-11
  Scenario: A CONNECT with credentials carries the user name and password its flags announce
    Given a broker that requires a username and password
    And a connector "c" with the right username and password
    When "c" starts
    Then "c" reaches Up
    And what "c" sent keeps the client statements of this scenario

  @REQ_0257 @TEST_2613 @MQTT-2.3.1-1 @MQTT-2.3.1-2
  Scenario: Packet identifiers are never 0 and never reused while in use
    Given a broker
    And a started connector "c"
    And a writer "out" on "c" to topic "ids/t" at QoS 1
    When the path from the broker to "c" stalls
    And "out" sends 40 values without waiting
    And the wire carried 40 PUBLISH packets from "c"
    And a reader "late" on "c" for topic "ids/late" at QoS 1
    And the wire carried 1 SUBSCRIBE packets from "c"
    And the path from the broker to "c" is released
    Then every delivery of "out" completes successfully
    And what "c" sent keeps the client statements of this scenario

  @REQ_0257 @TEST_2614 @MQTT-3.3.1-1 @MQTT-3.3.1-3 @MQTT-2.3.1-3 @MQTT-4.3.2-1 @MQTT-4.4.0-1 @MQTT-4.6.0-1
  Scenario: A resumed session sends its unacknowledged PUBLISHes again, DUP set, same identifiers, in order
    Given a broker
    And a connector "c" with a persistent session
    And a writer "out" on "c" to topic "resend/t" at QoS 1
    When "c" starts
    Then "c" reaches Up
    When the path from the broker to "c" stalls
    And "out" sends 5 values without waiting
    And the wire carried 5 PUBLISH packets from "c"
    And the connection of "c" is cut and the path released
    Then every delivery of "out" completes successfully
    And what "c" sent keeps the client statements of this scenario

  @REQ_0257 @TEST_2615 @MQTT-2.3.1-6 @MQTT-4.3.2-2 @MQTT-3.3.4-1 @MQTT-4.5.0-2 @MQTT-4.6.0-2
  Scenario: Each QoS 1 PUBLISH received is acknowledged once, with its identifier, in the order received, read or dropped
    Given a broker
    And a started connector "c" with inbound capacity 3
    And a started connector "p"
    And a reader "in" on "c" for topic "acks/t" at QoS 1
    And a writer "out" on "p" to topic "acks/t" at QoS 1
    And a writer "zero" on "p" to topic "acks/t" at QoS 0
    When "in" is subscribed, probed through "out"
    And "in" is drained
    And "out" sends 20 values and they are delivered
    And "zero" sends the value 0 and it is delivered
    Then what "c" sent keeps the client statements of this scenario

  @REQ_0257 @TEST_2616 @MQTT-3.1.2-23
  Scenario: An idle connector sends a packet within every keep-alive interval
    Given a broker
    And a started connector "c" with keep alive 1
    When 1.6 seconds pass
    Then what "c" sent keeps the client statements of this scenario
