Feature: MQTT 3.1.1 (REQ_0257)

  @REQ_0257 @TEST_2570
  Scenario: The CONNECT packet says protocol MQTT, level 4
    Given a broker
    And a started connector "c"
    Then the wire carried a CONNECT from "c" with protocol name "MQTT" and level 4
