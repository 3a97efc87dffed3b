Feature: Inbound saturation drops frames and signals Degraded (REQ_0261)

  @REQ_0261 @TEST_0140
  Scenario Outline: A reader that does not drain: drops are counted, Degraded comes once, and re-arms
    Given a broker
    And a started connector "sub" with inbound capacity 4 and drop threshold <threshold>
    And a started connector "pub" with outbound capacity 100
    And a health subscription "h" on "sub"
    And a reader "in" on "sub" for topic "fl/t" at QoS 0
    And a writer "out" on "pub" to topic "fl/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And "h" is emptied
    And "out" sends 40 values and they are delivered
    Then within 10 seconds "in" dropped 36
    And "h" saw exactly one event, to Degraded saying it dropped at least <threshold> inbound frames
    When "in" is drained
    Then "in" received 4 values and dropped 36, accounting for all 40
    And "sub" reaches Up
    And "h" saw exactly one event, to Up
    When "out" sends 10 values and they are delivered
    Then "sub" reaches Degraded

    Examples:
      | threshold |
      | 1         |
      | 3         |
