Feature: QoS 0 and QoS 1 (REQ_0252)

  @REQ_0252 @TEST_0130
  Scenario Outline: A QoS 0 round trip preserves the payload bytes exactly
    Given a broker
    And a started connector "pub" using the bytes codec
    And a started connector "sub" using the bytes codec
    And a reader "in" on "sub" for topic "qos0/t" at QoS 0
    And a writer "out" on "pub" to topic "qos0/t" at QoS 0
    When "in" is subscribed, probed through "out"
    And "out" sends the <payload> payload
    Then "in" receives exactly the <payload> payload at QoS 0
    And the wire carried PUBLISH packets at QoS 0 from "pub"

    Examples:
      | payload                |
      | empty                  |
      | binary-with-zero-bytes |
      | 64KiB                  |

  @REQ_0252 @TEST_0131
  Scenario: A QoS 1 delivery completes only once the broker's PUBACK arrived
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "qos1/t" at QoS 1
    And a writer "out" on "pub" to topic "qos1/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And the path from the broker to "pub" stalls
    And "out" sends the value "acked"
    Then the wire carries a QoS 1 PUBLISH from "pub"
    And the last delivery of "out" is still pending after 0.5 seconds
    When the path from the broker to "pub" is released
    Then the last delivery of "out" completes successfully
    And "in" receives the value "acked"

  @REQ_0252 @TEST_2521
  Scenario: A persistent session gets the QoS 1 messages the broker kept while it was away
    Given a broker
    And a started connector "pub"
    And a writer "out" on "pub" to topic "session/t" at QoS 1
    And a connector "sub" with a persistent session
    And a reader "in" on "sub" for topic "session/t" at QoS 1
    When "sub" starts
    Then "sub" reaches Up
    When "in" is subscribed, probed through "out"
    And "sub" closes
    And the broker has seen "sub" go
    And "out" sends 3 values and they are delivered
    And a connector "again" with the persistent session of "sub"
    And a reader "in again" on "again" for topic "session/t" at QoS 1
    And "again" starts
    Then "in again" receives the values 0 to 2, each at least once

  @REQ_0252 @TEST_2522
  Scenario: close(timeout) first delivers every message accepted at QoS 1
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "flush/t" at QoS 1
    And a writer "out" on "pub" to topic "flush/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And the path from the broker to "pub" stalls
    And "out" sends 5 values without waiting
    And "pub" starts closing with a timeout of 10 seconds
    And the path from the broker to "pub" is released
    Then "pub" finished closing with Success
    And every delivery of "out" completes successfully
    And "in" receives the values 0 to 4, each at least once

  @REQ_0252 @TEST_2523
  Scenario: close(timeout) with the broker unreachable fails what it could not deliver with ConnectorDown
    Given a broker
    And a started connector "pub"
    And a writer "out" on "pub" to topic "stuck/t" at QoS 1
    When the path between "pub" and the broker stalls
    And "out" sends 5 values without waiting
    And "pub" starts closing with a timeout of 0.5 seconds
    Then "pub" finished closing
    And every delivery of "out" fails with ConnectorDown
