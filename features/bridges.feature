Feature: Bounded bridges (REQ_0259)

  @REQ_0259 @TEST_0160
  Scenario Outline: Concurrent senders: every accepted message is on the wire exactly once
    Given a broker
    And a started connector "pub" with outbound capacity 16
    And <writers> writers on "pub" to topic "conc/t" at QoS 1
    When 4 threads each send 250 numbered values through those writers, retrying on BackPressure
    Then all threads finish within 60 seconds
    And every accepted value was published on the wire exactly once
    And the sequence numbers of each writer strictly increase

    Examples:
      | writers |
      | 1       |
      | 4       |

  @REQ_0259 @TEST_2590
  Scenario: Bridge capacities come from the options
    Given a broker
    And a started connector "pub" with outbound capacity 3 and at most 1 message in flight
    And a started connector "sub" with inbound capacity 5
    And a reader "in" on "sub" for topic "cap/t" at QoS 0
    And a writer "probe" on "pub" to topic "cap/t" at QoS 1
    When "in" is subscribed, probed through "probe"
    And "probe" sends 40 values and they are delivered
    Then after 1 seconds "in" yields exactly 5 messages
    When the path between "pub" and the broker stalls
    And "probe" sends values until one is refused
    Then at least 3 and at most 4 values were accepted before BackPressure
