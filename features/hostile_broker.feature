Feature: A connector survives a broker that breaks MQTT 3.1.1 (REQ_0257)

  The kit's proxy plays a hostile broker: it injects, between the broker's own
  packets, bytes no broker may send. MQTT-4.8.0-1: a client that meets a protocol
  violation closes the connection. Nothing of what was refused reaches a reader,
  no PUBACK answers it, and the connector's health shows the loss (connecting again
  afterwards is REQ_0250's, checked by TEST_2502).

  Background:
    Given a broker
    And a started connector "c"
    And a reader "in" on "c" for topic "hostile/t" at QoS 1
    And a writer "probe" on "c" to topic "hostile/t" at QoS 1
    And "in" is subscribed, probed through "probe"

  @REQ_0257 @TEST_2621 @MQTT-3.3.2-2
  Scenario: A PUBLISH to a topic name with a wildcard closes the connection
    When the broker sends "c" a QoS 1 PUBLISH on "hostile/+"
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2622 @MQTT-4.7.3-1
  Scenario: A PUBLISH to the empty topic name closes the connection
    When the broker sends "c" a QoS 1 PUBLISH on the empty topic name
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2623 @MQTT-1.5.3-1
  Scenario: A PUBLISH whose topic name is ill-formed UTF-8 closes the connection
    When the broker sends "c" a QoS 1 PUBLISH on "hostile/\xff\xfe"
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2624 @MQTT-1.5.3-2 @MQTT-4.7.3-2
  Scenario: A PUBLISH whose topic name holds U+0000 closes the connection
    When the broker sends "c" a QoS 1 PUBLISH on "hostile/a\x00b"
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2625 @MQTT-3.3.1-4
  Scenario: A PUBLISH with QoS 3 closes the connection
    When the broker sends "c" a PUBLISH with QoS 3 on "hostile/t"
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2626 @MQTT-3.3.1-2
  Scenario: A QoS 0 PUBLISH with DUP set closes the connection
    When the broker sends "c" a QoS 0 PUBLISH with DUP set on "hostile/t"
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2627 @MQTT-2.3.1-1
  Scenario: A QoS 1 PUBLISH with packet identifier 0 closes the connection
    When the broker sends "c" a QoS 1 PUBLISH with packet identifier 0 on "hostile/t"
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2628 @MQTT-2.2.2-2
  Scenario: A packet with reserved fixed-header flags set closes the connection
    When the broker sends "c" the bytes "d1 00", a PINGRESP with a reserved flag set
    Then "c" closes that connection itself
    And the health of "c" shows the loss

  @REQ_0257 @TEST_2629 @MQTT-4.8.0-1
  Scenario Outline: A packet of a reserved type closes the connection
    When the broker sends "c" the bytes "<bytes>", a packet of reserved type <type>
    Then "c" closes that connection itself
    And the health of "c" shows the loss

    Examples:
      | type | bytes |
      | 0    | 00 00 |
      | 15   | f0 00 |

  @REQ_0257 @TEST_2630 @MQTT-4.8.0-1
  Scenario Outline: A remaining length that lies closes the connection
    When the broker sends "c" the bytes "<bytes>", <lie>
    Then "c" closes that connection itself
    And "in" receives nothing of it, and "c" sent no PUBACK for it
    And the health of "c" shows the loss

    Examples:
      | lie                                                | bytes                            |
      | a PUBLISH shorter than the topic length it gives   | 32 05 00 20 61 62 63             |
      | a remaining length of five bytes                   | 32 ff ff ff ff 01 00 01 61 00 01 |
      | a PUBACK of three bytes                            | 40 03 00 01 00                   |

  @REQ_0257 @TEST_2631 @MQTT-3.8.4-5
  Scenario: A SUBACK without a return code closes the connection
    When the broker answers the next SUBSCRIBE of "c" with a SUBACK without return codes
    And a reader "late" on "c" for topic "hostile/late" at QoS 1
    Then "c" closes that connection itself
    And the health of "c" shows the loss
