Feature: A connector meets a hostile broker's CONNACK as the contract says (REQ_0257)

  The kit's proxy turns the broker's CONNACK into a refusal, code 1 to 5 (section
  3.2.2.3). A refused connection is over: the client closes it itself (the real
  broker behind the proxy accepted it and would not). Refused credentials (4, 5)
  are Down at once with no second CONNECT; for the others the connector may try
  again, but never reaches Up.

  @REQ_0257 @TEST_2620 @MQTT-3.2.0-1
  Scenario: A PUBLISH before the CONNACK closes the connection, unanswered and never Up
    Given a broker
    And a connector "c"
    And a reader "in" on "c" for topic "hostile/t" at QoS 1
    And the broker sends "c" a QoS 1 PUBLISH on "hostile/t" before its CONNACK
    When "c" starts
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And "c" was never Up on that connection

  @REQ_0257 @TEST_2632 @MQTT-3.2.2-5
  Scenario Outline: CONNACK refusal code <code>
    Given a broker
    And a connector "c" with reconnect attempt ceiling 1
    And the broker refuses every CONNECT of "c" with CONNACK return code <code>
    When "c" starts
    Then "c" closes each refused connection itself, and is never Up
    And "c" <after>

    Examples:
      | code | after                                                       |
      | 1    | reaches Down                                                |
      | 2    | reaches Down                                                |
      | 3    | reaches Down                                                |
      | 4    | reaches Down, after 0.6 seconds with exactly 1 CONNECT      |
      | 5    | reaches Down, after 0.6 seconds with exactly 1 CONNECT      |

  @REQ_0257 @TEST_2633 @MQTT-4.3.2-2 @MQTT-2.3.1-6 @MQTT-4.6.0-2
  Scenario: The broker's bytes one at a time are read as whole packets
    Given a broker
    And a connector "c"
    And the broker's bytes reach "c" one at a time
    And a started connector "p"
    And a reader "in" on "c" for topic "trickle/t" at QoS 1
    And a writer "out" on "p" to topic "trickle/t" at QoS 1
    When "c" starts
    And "in" is subscribed, probed through "out"
    And "out" sends 5 values and they are delivered
    Then "in" receives the values 0 to 4, each at least once
    And what "c" sent keeps the client statements of this scenario
