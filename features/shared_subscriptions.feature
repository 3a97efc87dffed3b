Feature: Shared subscriptions (REQ_0254)

  A reader's MqttRouting(filter=..., share_group=...) subscribes $share/<group>/<filter>:
  the broker hands each message to one member of the group, and the member's
  reader still matches the message's real topic against the filter. The kit's
  embedded amqtt has no shared subscriptions, so without --broker-url this
  scenario runs on a mosquitto the kit starts (NOT RUN, with the reason, where
  mosquitto is not installed); with --broker-url it runs on that broker.

  @REQ_0254 @TEST_2542
  Scenario: A share group gets every message exactly once, a plain subscriber gets all
    Given a broker that supports shared subscriptions
    And a started connector "pub"
    And a started connector "member-1"
    And a started connector "member-2"
    And a started connector "watcher"
    And a reader "m1" on "member-1" for filter "plant/+/temperature" in share group "ingest" at QoS 1
    And a reader "m2" on "member-2" for filter "plant/+/temperature" in share group "ingest" at QoS 1
    And a reader "all" on "watcher" for filter "plant/+/temperature" at QoS 1
    When "pub" publishes 40 numbered messages to "plant/A/temperature"
    Then "m1" and "m2" together received each numbered message exactly once
    And "all" received each numbered message exactly once
    And every numbered message arrived with its topic "plant/A/temperature"
