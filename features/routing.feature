Feature: MqttRouting carries topic, QoS and retained flag (REQ_0251)

  @REQ_0251 @TEST_2510
  Scenario: A received envelope carries the message's own topic, QoS and retained flag
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "site/tank-7/level" at QoS 1
    And a retained writer "w" on "pub" to topic "site/tank-7/level" at QoS 1
    When "in" is subscribed, probed through "w"
    And "w" sends the value 42
    Then "in" receives the value 42 with topic "site/tank-7/level", QoS 1 and retained false
    And the last send through "w" and the last message "in" received carry wall-clock timestamps

  @REQ_0251 @TEST_2512
  Scenario Outline: A received envelope's QoS is the QoS it was delivered at, not the reader's
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "site/qos/<reader>" at QoS <reader>
    And a writer "w" on "pub" to topic "site/qos/<reader>" at QoS <sent>
    When "in" is subscribed, probed through "w"
    And "w" sends the value 7
    Then the broker delivers the value 7 to "in" at QoS <delivered>, and its envelope says so

    Examples:
      | reader | sent | delivered |
      | 1      | 0    | 0         |
      | 0      | 1    | 0         |
      | 1      | 1    | 1         |

  @REQ_0251 @TEST_2511
  Scenario Outline: Invalid routings are refused with the rule they break; the valid one next to it works
    Given a broker
    And a started connector "c"
    Then the routing <routing> is refused with a message containing "<words>"
    And a reader on "c" with the routing <valid> receives what is published to a topic it matches

    Examples:
      | routing                 | words                 | valid                   |
      | topic "a/b" at QoS 2    | QoS 2                 | topic "a/b" at QoS 1    |
      | topic "a/+/b" at QoS 0  | wildcard              | topic "a/x/b" at QoS 0  |
      | filter "a/#/b" at QoS 0 | '#' must be the last  | filter "a/x/b" at QoS 0 |
      | filter "a/b+" at QoS 0  | '+' must fill a whole | filter "a/b" at QoS 0   |
      | topic "" at QoS 0       | must not be empty     | topic "a" at QoS 0      |
      | topic "a\x00b" at QoS 0 | NUL                   | topic "a b" at QoS 0    |

  @REQ_0251 @TEST_2511
  Scenario: A writer may not publish to a $ topic, a reader may read one
    Given a broker
    And a connector "c"
    Then creating a writer to topic "$SYS/broker/uptime" on "c" returns a ConfigurationError mentioning "$"
    And creating a reader for topic "$SYS/broker/uptime" on "c" returns Success
