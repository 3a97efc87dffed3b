Feature: Wildcard subscriptions and demultiplexing (REQ_0254)

  @REQ_0254 @TEST_0133
  Scenario: A single-level wildcard matches one level
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "plus" on "sub" for filter "plant/+/temperature" at QoS 1
    When "pub" publishes to "plant/A/temperature", "plant/B/temperature" and "plant/A/B/temperature"
    Then "plus" receives exactly the messages of "plant/A/temperature" and "plant/B/temperature"

  @REQ_0254 @TEST_0134
  Scenario: A multi-level wildcard matches every level below, and the parent
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "hash" on "sub" for filter "plant/#" at QoS 1
    When "pub" publishes to "plant", "plant/A/temperature" and "plant/A/B/temperature"
    Then "hash" receives exactly the messages of "plant", "plant/A/temperature" and "plant/A/B/temperature"

  @REQ_0254 @TEST_0102
  Scenario: Every reader receives exactly the topics its filter matches
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And readers on "sub" for these filters
      | filter             |
      | sport/tennis/+     |
      | sport/#            |
      | +/+                |
      | /+                 |
      | sport/+            |
      | a//b               |
      | a/+/b              |
    When "pub" publishes once to each of these topics
      | topic                |
      | sport/tennis/player1 |
      | sport                |
      | sport/               |
      | /finance             |
      | a//b                 |
      | sport/tennis/p1/x    |
    Then the readers received exactly
      | filter         | topics                                                  |
      | sport/tennis/+ | sport/tennis/player1                                    |
      | sport/#        | sport/tennis/player1, sport, sport/, sport/tennis/p1/x |
      | +/+            | sport/, /finance                                        |
      | /+             | /finance                                                |
      | sport/+        | sport/                                                  |
      | a//b           | a//b                                                    |
      | a/+/b          | a//b                                                    |

  @REQ_0254 @TEST_2540
  Scenario: Overlapping readers each get their own copy
    Given a broker
    And a started connector "pub"
    And a started connector "sub"
    And a reader "one" on "sub" for filter "ovl/#" at QoS 1
    And a reader "two" on "sub" for filter "ovl/+/x" at QoS 1
    And a reader "three" on "sub" for topic "ovl/a/x" at QoS 1
    When "pub" publishes to "ovl/a/x"
    Then "one" receives exactly the messages of "ovl/a/x"
    And "two" receives exactly the messages of "ovl/a/x"
    And "three" receives exactly the messages of "ovl/a/x"

  @REQ_0254 @TEST_2541
  Scenario: Messages on $ topics reach $ filters but never # or +/ filters
    Given a broker
    And a started connector "sub" using the bytes codec
    And a reader "all" on "sub" for the unprefixed filter "#" at QoS 0
    And a reader "plus" on "sub" for the unprefixed filter "+/broker/#" at QoS 0
    And a reader "sys" on "sub" for the unprefixed filter "$SYS/#" at QoS 0
    When the broker publishes a message on a $SYS topic
    Then "sys" receives a message whose topic starts with "$SYS/"
    And "all" received no message whose topic starts with "$"
    And "plus" received no message whose topic starts with "$"

  @REQ_0254 @TEST_2543
  Scenario: A subscription the broker refuses reaches the reader as an error
    Given a broker
    And a started connector "sub"
    And the broker refuses subscriptions to "deny/#" from "sub"
    When a reader "in" on "sub" for filter "deny/#" at QoS 1
    Then receiving on "in" fails with a StackError
