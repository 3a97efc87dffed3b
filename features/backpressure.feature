Feature: Outbound saturation surfaces as BackPressure (REQ_0260)

  @REQ_0260 @TEST_0139
  Scenario: A stalled broker path makes send return BackPressure and health Degraded, once
    Given a broker
    And a started connector "pub" with outbound capacity 2 and at most 4 messages in flight
    And a health subscription "h" on "pub"
    And a writer "out" on "pub" to topic "bp/t" at QoS 1
    When the path between "pub" and the broker stalls
    And "out" sends values until one is refused
    Then the refusal was BackPressure within 100 sends
    And "out" sending again is refused with BackPressure
    And "h" saw exactly one event, to Degraded
    When the path between "pub" and the broker is released
    Then "pub" reaches Up
    And "out" sends the value "after" and it is delivered
    And "h" saw exactly one event, to Up

  @REQ_0260 @TEST_2600
  Scenario: Closing while Degraded by backpressure goes straight to Down
    Given a broker
    And a started connector "pub" with outbound capacity 2 and at most 4 messages in flight
    And a health subscription "h" on "pub"
    And a writer "out" on "pub" to topic "bpclose/t" at QoS 1
    When the path between "pub" and the broker stalls
    And "out" sends values until one is refused
    Then the refusal was BackPressure within 100 sends
    And "h" saw exactly one event, to Degraded
    When "pub" starts closing with a timeout of 1 seconds
    Then "pub" finished closing
    And "pub" is Down
    And "h" saw exactly one event, from Degraded to Down
