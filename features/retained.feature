Feature: Retained messages (REQ_0253)

  @REQ_0253 @TEST_0132
  Scenario: A later subscriber receives the retained value first, flagged as retained
    Given a broker
    And a started connector "pub"
    And a retained writer "keep" on "pub" to topic "cfg/setpoint" at QoS 1
    And a writer "plain" on "pub" to topic "cfg/setpoint" at QoS 1
    When "keep" sends the value 21 and it is delivered
    And "plain" sends the value 99 and it is delivered
    And a started connector "late" joins
    And a reader "in" on "late" for topic "cfg/setpoint" at QoS 1
    Then "in" receives the value 21 flagged as retained
    And the wire carried a retained PUBLISH from "pub"

  @REQ_0253 @TEST_2531
  Scenario: A second reader of a retained topic receives the retained value too, and the first no copy
    Given a broker
    And a started connector "pub"
    And a retained writer "keep" on "pub" to topic "cfg/shared" at QoS 1
    When "keep" sends the value 21 and it is delivered
    And a started connector "late" joins
    And a reader "first" on "late" for topic "cfg/shared" at QoS 1
    Then "first" receives the value 21 flagged as retained
    When a reader "second" on "late" for topic "cfg/shared" at QoS 1
    Then "second" receives the value 21 flagged as retained
    And "first" receives nothing more
