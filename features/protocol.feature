Feature: MQTT 3.1.1 (REQ_0257)

  @REQ_0257 @TEST_2570
  Scenario: The CONNECT packet says protocol MQTT, level 4
    Given a broker
    And a started connector "c"
    Then the wire carried a CONNECT from "c" with protocol name "MQTT" and level 4

  @REQ_0257 @TEST_2571
  Scenario: A correlation id stays off the wire (3.1.1 has no properties) and received envelopes carry the all-zero id
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "in" on "sub" for topic "corr/t" at QoS 1
    And a writer "out" on "pub" to topic "corr/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And "out" sends {"n": 1} with a correlation id and it is delivered
    Then the PUBLISH of "pub" on the wire carries exactly the codec's bytes of {"n": 1}
    And "in" receives {"n": 1} with the all-zero correlation id
